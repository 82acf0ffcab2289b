SELECT coalesce(max(head), 0)
FROM timebox_snapshot
WHERE ns = $1 AND aggregate = $2
