-- Reads the feed of ns $1 after Position ($2, $3), up to $4 events, in
-- Position order. Only appends of transactions below the snapshot's xmin
-- are read: every one of them has ended, so no event can later appear
-- below what this returns. The appends come from timebox_feed (one row
-- each, an index range scan of its key), their events from the live log
-- (a range of its key, checked against the xid, since an archived
-- aggregate may be appended again at the same sequences) and from
-- timebox_feed_kept, where trimming and archiving move them.
SELECT x.xid, x.off, x.aggregate, x.seq, x.sec, x.nsec, x.type, x.data,
       x.id, x.metadata
FROM (
    -- The appends needed: those whose events before them, counted from
    -- the first (which may be partly read already), are fewer than $4
    -- plus the first's size. So the join below reads about $4 events
    -- whatever plan it gets.
    SELECT w.xid, w.off, w.aggregate, w.seq, w.n
    FROM (
        SELECT f.xid, f.off, f.aggregate, f.seq, f.n,
               sum(f.n) OVER (ORDER BY f.xid, f.off ROWS UNBOUNDED PRECEDING)
                   - f.n AS before,
               first_value(f.n) OVER (ORDER BY f.xid, f.off) AS first
        FROM (
            SELECT f.xid, f.off, f.aggregate, f.seq, f.n
            FROM timebox_feed AS f
            WHERE f.ns = $1 AND f.xid >= $2::bigint
              AND f.xid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
            ORDER BY f.xid, f.off
            LIMIT $4 + 1
        ) AS f
    ) AS w
    WHERE w.before < $4 + w.first
) AS a
CROSS JOIN LATERAL (
    SELECT e.xid, e.off, e.aggregate, e.seq, e.sec, e.nsec, e.type, e.data,
           e.id, e.metadata
    FROM timebox_events AS e
    WHERE e.ns = $1 AND e.aggregate = a.aggregate
      AND e.seq >= a.seq AND e.seq < a.seq + a.n AND e.xid = a.xid
    UNION ALL
    SELECT k.xid, k.off, k.aggregate, k.seq, k.sec, k.nsec, k.type, k.data,
           k.id, k.metadata
    FROM timebox_feed_kept AS k
    WHERE k.ns = $1 AND k.xid = a.xid AND k.off >= a.off AND k.off < a.off + a.n
) AS x
WHERE (x.xid, x.off) > ($2::bigint, $3::integer)
ORDER BY a.xid, a.off, x.off
LIMIT $4
