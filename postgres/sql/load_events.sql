SELECT seq, sec, nsec, type, data, id, metadata
FROM timebox_events
WHERE ns = $1 AND aggregate = $2 AND seq >= $3
ORDER BY seq
