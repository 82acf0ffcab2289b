-- Appends a batch that changes no index, in one statement, so in one
-- round trip and one transaction. $1 ns, $2 aggregate, $3 expected head,
-- $4..$7 the events' seconds, nanoseconds, types and data, $8 the batch
-- size (at least 1). append_indexed.sql is the same with status and
-- label changes.
--
-- The head row is advanced only if it is at $3: by UPDATE for an existing
-- aggregate, by INSERT for a new one (ON CONFLICT covers a row created
-- concurrently, or left by a snapshot at 0). Under READ COMMITTED a writer
-- that finds the row locked waits, then re-checks the condition on the
-- committed row, so of many writers at one head exactly one advances it
-- and the others see a conflict, never a duplicate key. The events are
-- written only if the head moved.
--
-- No rows come back on success. On conflict one row per stored event from
-- $3 to the head comes back, each carrying the head; a single row with a
-- NULL seq when there are none. The head is read FOR SHARE, which returns
-- the latest committed row even when this statement waited for its
-- writer; the events are read from the statement's snapshot and may stop
-- short of that head (the caller reads the rest).
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
