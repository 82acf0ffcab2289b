-- $2 is the encoded prefix ID itself; [$3, $4) holds every ID that starts
-- with its whole parts ($3 ends in ':', $4 in ';', the next byte).
SELECT aggregate
FROM timebox_snapshot
WHERE ns = $1 AND (aggregate = $2 OR (aggregate >= $3 AND aggregate < $4))
