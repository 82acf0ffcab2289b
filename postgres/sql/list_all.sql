SELECT aggregate
FROM timebox_snapshot
WHERE ns = $1
