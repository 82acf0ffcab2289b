-- One page of the live aggregates under a prefix: up to $6 after
-- aggregate $3 ('' for the first page). $2 is the encoded prefix ID
-- itself, which sorts before the IDs under it; [$4, $5) holds every ID
-- that starts with its whole parts ($4 ends in ':', $5 in ';'). Two
-- primary-key lookups of at most $6 rows, sorted together.
SELECT aggregate FROM (
    (SELECT aggregate FROM timebox_snapshot
     WHERE ns = $1 AND aggregate = $2 AND aggregate > $3)
    UNION ALL
    (SELECT aggregate FROM timebox_snapshot
     WHERE ns = $1 AND aggregate > $3 AND aggregate >= $4 AND aggregate < $5
     ORDER BY aggregate
     LIMIT $6)
) AS page
ORDER BY aggregate
LIMIT $6
