-- One page of the aggregates in status $2: up to $6 entries after the
-- entry ($3 sec, $4 nsec, $5 aggregate), in entry order. The first page
-- passes the least bound (min bigint, -1, ''). A range scan of
-- timebox_index_lookup from the cursor, stopped by the LIMIT.
SELECT aggregate, sec, nsec
FROM timebox_index
WHERE ns = $1 AND kind = 0 AND name = '' AND value = $2
  AND (sec, nsec, aggregate) > ($3, $4, $5)
ORDER BY sec, nsec, aggregate
LIMIT $6
