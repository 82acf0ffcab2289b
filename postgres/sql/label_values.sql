SELECT DISTINCT value
FROM timebox_index
WHERE ns = $1 AND kind = 1 AND name = $2
