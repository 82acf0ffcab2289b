SELECT value
FROM timebox_index
WHERE ns = $1 AND aggregate = $2 AND kind = 0 AND name = ''
