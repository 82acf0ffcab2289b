-- The batch's index change, if the head moved: $9 the status (NULL:
-- unchanged, '': cleared) entered at $10 s + $11 ns, $12/$13 label names
-- and values ('': removed). Only batches that change the index carry
-- these four writes.
, status_cleared AS (
    DELETE FROM timebox_index AS x
    WHERE $9::bytea = '' AND EXISTS (SELECT 1 FROM advanced)
      AND x.ns = $1 AND x.aggregate = $2 AND x.kind = 0 AND x.name = ''
), status_set AS (
    INSERT INTO timebox_index AS x (ns, aggregate, kind, name, value, sec, nsec)
    SELECT $1, $2, 0, '', $9::bytea, $10::bigint, $11::integer
    WHERE $9::bytea <> '' AND EXISTS (SELECT 1 FROM advanced)
    ON CONFLICT (ns, aggregate, kind, name) DO UPDATE
    SET value = excluded.value, sec = excluded.sec, nsec = excluded.nsec
), labels_removed AS (
    DELETE FROM timebox_index AS x
    USING unnest($12::bytea[], $13::bytea[]) AS l(name, value)
    WHERE l.value = '' AND EXISTS (SELECT 1 FROM advanced)
      AND x.ns = $1 AND x.aggregate = $2 AND x.kind = 1 AND x.name = l.name
), labels_set AS (
    INSERT INTO timebox_index AS x (ns, aggregate, kind, name, value, sec, nsec)
    SELECT $1, $2, 1, l.name, l.value, 0, 0
    FROM unnest($12::bytea[], $13::bytea[]) AS l(name, value)
    WHERE l.value <> '' AND EXISTS (SELECT 1 FROM advanced)
    ON CONFLICT (ns, aggregate, kind, name) DO UPDATE SET value = excluded.value
)
