SELECT timebox_save_snapshot($1, $2, $3, $4, $5)
