-- One page of every live aggregate: up to $3 after aggregate $2 ('' for
-- the first page), a range scan of timebox_snapshot's primary key.
SELECT aggregate
FROM timebox_snapshot
WHERE ns = $1 AND aggregate > $2
ORDER BY aggregate
LIMIT $3
