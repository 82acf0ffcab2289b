-- Sets every partition of consumer $2 to checkpoint ($3, $4), gives them
-- one new epoch (an uncorrelated subquery, run once for the statement)
-- and ends every lease. No row: no such consumer.
UPDATE timebox_consumers AS c
SET xid = $3, off = $4, owner = NULL, expires = NULL,
    epoch = (SELECT nextval('timebox_consumer_epoch'))
WHERE c.ns = $1 AND c.name = $2
RETURNING 1
