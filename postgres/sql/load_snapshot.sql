-- The snapshot row (snap true; data NULL when there is no snapshot) first,
-- then the events from its sequence on, from one statement snapshot.
WITH s AS (
    SELECT coalesce(seq, 0) AS seq, data
    FROM timebox_snapshot
    WHERE ns = $1 AND aggregate = $2
)
SELECT true AS snap, s.seq, 0::bigint AS sec, 0 AS nsec,
       NULL::bytea AS type, s.data, NULL::bytea AS id, NULL::bytea AS metadata
FROM s
UNION ALL
SELECT false, e.seq, e.sec, e.nsec, e.type, e.data, e.id, e.metadata
FROM timebox_events e
WHERE e.ns = $1 AND e.aggregate = $2
  AND e.seq >= coalesce((SELECT seq FROM s), 0)
ORDER BY snap DESC, seq
