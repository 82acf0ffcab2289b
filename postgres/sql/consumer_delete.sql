-- Removes consumer $2. No row: no such consumer.
DELETE FROM timebox_consumers AS c
WHERE c.ns = $1 AND c.name = $2
RETURNING 1
