-- An append is one statement, assembled in Go from these fragments:
-- a head step (this file for an existing aggregate, append_head_new.sql
-- for a new one), the batch (append_event.sql for one event,
-- append_events.sql for more), append_index.sql when the batch changes
-- the index, and append_conflict.sql. One statement is one round trip and
-- one transaction. Parameters: $1 ns, $2 aggregate, $3 expected head,
-- $4..$7 the events' seconds, nanoseconds, types and data, $8 the batch
-- size (at least 1), $9 and $10 the events' IDs and encoded metadata
-- (arrays of each for append_events.sql), and for append_index.sql
-- $11..$15.
--
-- The head row is advanced only if it is at $3. Under READ COMMITTED a
-- writer that finds the row locked waits, then re-checks head = $3 on the
-- committed row, so of many writers at one head exactly one advances it
-- and the others see a conflict, never a duplicate key. Nothing else is
-- written unless the head moved.
WITH advanced AS (
    UPDATE timebox_snapshot AS s SET head = s.head + $8::bigint
    WHERE s.ns = $1 AND s.aggregate = $2 AND s.head = $3
    RETURNING s.head
)
