-- The batch's index change, if the head moved: $11 the status (NULL:
-- unchanged, '': cleared) entered at $12 s + $13 ns, $14/$15 label names
-- and values ('': removed). Only batches that change the index carry
-- these four writes.
, status_cleared AS (
    DELETE FROM timebox_index AS x
    WHERE $11::bytea = '' AND EXISTS (SELECT 1 FROM advanced)
      AND x.ns = $1 AND x.aggregate = $2 AND x.kind = 0 AND x.name = ''
), status_set AS (
    INSERT INTO timebox_index AS x (ns, aggregate, kind, name, value, sec, nsec)
    SELECT $1, $2, 0, '', $11::bytea, $12::bigint, $13::integer
    WHERE $11::bytea <> '' AND EXISTS (SELECT 1 FROM advanced)
    ON CONFLICT (ns, aggregate, kind, name) DO UPDATE
    SET value = excluded.value, sec = excluded.sec, nsec = excluded.nsec
), labels_removed AS (
    DELETE FROM timebox_index AS x
    USING unnest($14::bytea[], $15::bytea[]) AS l(name, value)
    WHERE l.value = '' AND EXISTS (SELECT 1 FROM advanced)
      AND x.ns = $1 AND x.aggregate = $2 AND x.kind = 1 AND x.name = l.name
), labels_set AS (
    INSERT INTO timebox_index AS x (ns, aggregate, kind, name, value, sec, nsec)
    SELECT $1, $2, 1, l.name, l.value, 0, 0
    FROM unnest($14::bytea[], $15::bytea[]) AS l(name, value)
    WHERE l.value <> '' AND EXISTS (SELECT 1 FROM advanced)
    ON CONFLICT (ns, aggregate, kind, name) DO UPDATE SET value = excluded.value
)
