-- Moves partition $3 of consumer $2 to checkpoint ($5, $6) and extends
-- the lease by $7 ms, if $4 holds it (even expired). No row: lease lost.
UPDATE timebox_consumers AS c
SET xid = $5, off = $6,
    expires = clock_timestamp() + $7::bigint * interval '1 millisecond'
WHERE c.ns = $1 AND c.name = $2 AND c.part = $3 AND c.owner = $4
RETURNING 1
