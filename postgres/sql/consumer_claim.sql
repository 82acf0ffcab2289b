SELECT status, cxid, coff, cepoch FROM timebox_consumer_claim($1, $2, $3, $4, $5, $6)
