-- Checks the head against $3 (an empty batch, or after an append's
-- conflict): no rows when the head is $3, else one row per stored event
-- from $3 to the head, each carrying the head (a single row with a NULL
-- seq when there are none), from one statement snapshot, so the events
-- are exactly those below the head it read.
WITH h AS (
    SELECT coalesce(max(s.head), 0) AS head FROM timebox_snapshot AS s
    WHERE s.ns = $1 AND s.aggregate = $2
)
SELECT h.head, e.seq, e.sec, e.nsec, e.type, e.data, e.id, e.metadata
FROM h
LEFT JOIN timebox_events AS e
       ON e.ns = $1 AND e.aggregate = $2 AND e.seq >= $3 AND e.seq < h.head
WHERE h.head <> $3
ORDER BY e.seq
