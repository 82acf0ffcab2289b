-- Ends $4's lease on partition $3 of consumer $2, keeping the checkpoint.
UPDATE timebox_consumers AS c SET owner = NULL, expires = NULL
WHERE c.ns = $1 AND c.name = $2 AND c.part = $3 AND c.owner = $4
