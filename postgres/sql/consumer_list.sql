SELECT c.name, c.part, c.xid, c.off, coalesce(c.owner, ''), c.expires
FROM timebox_consumers AS c
WHERE c.ns = $1
ORDER BY c.name, c.part
