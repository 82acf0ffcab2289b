-- append.sql, plus the batch's index change: $9 the status (NULL:
-- unchanged, '': cleared) entered at $10 s + $11 ns, $12/$13 label names
-- and values ('': removed). The index rows are written only if the head
-- moved, in the same statement as the events. A separate file so that
-- batches without index changes do not pay for these four writes.
WITH moved AS (
    UPDATE timebox_snapshot AS s SET head = s.head + $8::bigint
    WHERE s.ns = $1 AND s.aggregate = $2 AND s.head = $3 AND $3 > 0
    RETURNING s.head
), created AS (
    INSERT INTO timebox_snapshot AS s (ns, aggregate, head)
    SELECT $1, $2, $8 WHERE $3 = 0
    ON CONFLICT (ns, aggregate) DO UPDATE SET head = excluded.head
    WHERE s.head = 0
    RETURNING s.head
), advanced AS (
    SELECT head FROM moved UNION ALL SELECT head FROM created
), appended AS (
    INSERT INTO timebox_events (ns, aggregate, seq, sec, nsec, type, data)
    SELECT $1, $2, $3 + b.i - 1, b.sec, b.nsec, b.type, b.data
    FROM unnest($4::bigint[], $5::integer[], $6::bytea[], $7::bytea[])
         WITH ORDINALITY AS b(sec, nsec, type, data, i)
    WHERE EXISTS (SELECT 1 FROM advanced)
), status_cleared AS (
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
), current AS (
    SELECT s.head FROM timebox_snapshot AS s
    WHERE s.ns = $1 AND s.aggregate = $2
    FOR SHARE
), conflict AS (
    SELECT coalesce((SELECT head FROM current), 0) AS head
    WHERE NOT EXISTS (SELECT 1 FROM advanced)
)
SELECT c.head, e.seq, e.sec, e.nsec, e.type, e.data
FROM conflict AS c
LEFT JOIN timebox_events AS e
       ON e.ns = $1 AND e.aggregate = $2 AND e.seq >= $3 AND e.seq < c.head
ORDER BY e.seq
