-- No rows come back on success. On conflict one row per stored event from
-- $3 to the head comes back, each carrying the head; a single row with a
-- NULL seq when there are none. The head is read FOR SHARE, which returns
-- the latest committed row even when this statement waited for its
-- writer; the events are read from the statement's snapshot and may stop
-- short of that head, and a head row created after that snapshot is not
-- seen at all (the caller then reads the rest).
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
