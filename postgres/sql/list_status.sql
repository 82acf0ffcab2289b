SELECT aggregate, sec, nsec
FROM timebox_index
WHERE ns = $1 AND kind = 0 AND name = '' AND value = $2
