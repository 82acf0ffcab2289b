{{/*
The append: one statement, so one round trip and one transaction, written
here whole and rendered at init in each of its eight shapes (appendShape):
.New for an append at 0 (the aggregate may not exist yet), .Many for a
batch of more than one event, .Index when the batch changes the index.

Parameters: $1 ns, $2 aggregate, $3 expected head, $4..$7 the events'
seconds, nanoseconds, types and data, $8 the batch size (at least 1), $9
and $10 the events' IDs and encoded metadata (NULL: none) (scalars for
one event, arrays for .Many); with .Index, $11 the status (NULL:
unchanged, '': cleared) entered at $12 s + $13 ns, and $14/$15 the label
names and values ('': removed).

The feed (DESIGN.md, Feed): the head row's xid becomes this
transaction's (timebox_feed_xid, which fails with serialization_failure
when the aggregate's last append has a larger one, and with .Notify
notifies channel timebox_feed), each event row carries it with its
offset in the batch, and one timebox_feed row records the append.

The head row is advanced only if it is at $3. Under READ COMMITTED a
writer that finds the row locked waits, then re-checks the head on the
committed row, so of many writers at one head exactly one advances it and
the others see a conflict, never a duplicate key. Nothing else is written
unless the head moved.

No rows come back on success. On conflict (the last two clauses) one row
per stored event from $3 to the head comes back, each carrying the head;
a single row with a NULL seq when there are none. The head is read FOR
SHARE, which returns the latest committed row even when this statement
waited for its writer; the events are read from the statement's snapshot
and may stop short of that head, and a head row created after that
snapshot is not seen at all: Persistence.completeConflict reads the rest.
*/ -}}
WITH advanced AS (
{{- if .New}}
    -- Create the head row, or, if a concurrent writer created it first or
    -- a snapshot at 0 left it, advance it only if still at 0.
    INSERT INTO timebox_snapshot AS s (ns, aggregate, head, xid)
    VALUES ($1, $2, $8::bigint, timebox_feed_xid(NULL, $1, {{.Notify}}))
    ON CONFLICT (ns, aggregate) DO UPDATE
    SET head = excluded.head, xid = timebox_feed_xid(s.xid, $1, false)
    WHERE s.head = 0 AND $3::bigint = 0
    RETURNING s.head, s.xid
{{- else}}
    UPDATE timebox_snapshot AS s
    SET head = s.head + $8::bigint, xid = timebox_feed_xid(s.xid, $1, {{.Notify}})
    WHERE s.ns = $1 AND s.aggregate = $2 AND s.head = $3
    RETURNING s.head, s.xid
{{- end}}
), appended AS (
{{- if .Many}}
    -- The batch at sequences $3, $3+1, ...
    INSERT INTO timebox_events
        (ns, aggregate, seq, sec, nsec, type, data, id, metadata, xid, off)
    SELECT $1, $2, $3 + b.i - 1, b.sec, b.nsec, b.type, b.data, b.id,
           b.metadata, a.xid, b.i - 1
    FROM advanced AS a,
         unnest($4::bigint[], $5::integer[], $6::bytea[], $7::bytea[],
                $9::bytea[], $10::bytea[])
         WITH ORDINALITY AS b(sec, nsec, type, data, id, metadata, i)
{{- else}}
    -- One event at $3: the common case, with scalar parameters, since
    -- unnest of arrays costs the server more than the rest of the append.
    INSERT INTO timebox_events
        (ns, aggregate, seq, sec, nsec, type, data, id, metadata, xid, off)
    SELECT $1, $2, $3, $4::bigint, $5::integer, $6::bytea, $7::bytea,
           $9::bytea, $10::bytea, a.xid, 0
    FROM advanced AS a
{{- end}}
)
, fed AS (
    -- The append's row in the feed (see schema.sql).
    INSERT INTO timebox_feed (ns, xid, off, aggregate, seq, n)
    SELECT $1, a.xid, 0, $2, $3, $8::bigint FROM advanced AS a
)
{{- if .Index}}
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
{{- end}}
-- The conflict path: only when the head did not move.
, current AS (
    SELECT s.head FROM timebox_snapshot AS s
    WHERE s.ns = $1 AND s.aggregate = $2
    FOR SHARE
), conflict AS (
    SELECT coalesce((SELECT head FROM current), 0) AS head
    WHERE NOT EXISTS (SELECT 1 FROM advanced)
)
SELECT c.head, e.seq, e.sec, e.nsec, e.type, e.data, e.id, e.metadata
FROM conflict AS c
LEFT JOIN timebox_events AS e
       ON e.ns = $1 AND e.aggregate = $2 AND e.seq >= $3 AND e.seq < c.head
ORDER BY e.seq
