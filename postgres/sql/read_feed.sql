-- Reads the feed of ns $1 after Position ($2, $3), up to $4 events, in
-- Position order: the live events and those trimmed or archived
-- (timebox_feed_kept), each an index range scan of (ns, xid, off). Only
-- rows of transactions below the snapshot's xmin are read: every one of
-- them has ended, so no row can later appear below what this returns.
WITH horizon AS (
    SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS xmin
)
SELECT f.xid, f.off, f.aggregate, f.seq, f.sec, f.nsec, f.type, f.data,
       f.id, f.metadata
FROM (
    (SELECT e.xid, e.off, e.aggregate, e.seq, e.sec, e.nsec, e.type, e.data,
            e.id, e.metadata
     FROM timebox_events AS e
     WHERE e.ns = $1 AND (e.xid, e.off) > ($2::bigint, $3::integer)
       AND e.xid < (SELECT xmin FROM horizon)
     ORDER BY e.xid, e.off
     LIMIT $4)
    UNION ALL
    (SELECT k.xid, k.off, k.aggregate, k.seq, k.sec, k.nsec, k.type, k.data,
            k.id, k.metadata
     FROM timebox_feed_kept AS k
     WHERE k.ns = $1 AND (k.xid, k.off) > ($2::bigint, $3::integer)
       AND k.xid < (SELECT xmin FROM horizon)
     ORDER BY k.xid, k.off
     LIMIT $4)
) AS f
ORDER BY f.xid, f.off
LIMIT $4
