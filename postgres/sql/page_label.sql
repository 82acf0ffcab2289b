-- One page of the aggregates whose label $2 has value $3: up to $5 after
-- aggregate $4 ('' for the first page). Label rows hold sec = nsec = 0, so
-- timebox_index_lookup holds them in aggregate order: a range scan from
-- the cursor, stopped by the LIMIT.
SELECT aggregate
FROM timebox_index
WHERE ns = $1 AND kind = 1 AND name = $2 AND value = $3
  AND sec = 0 AND nsec = 0 AND aggregate > $4
ORDER BY sec, nsec, aggregate
LIMIT $5
