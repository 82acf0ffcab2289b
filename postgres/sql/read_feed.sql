-- Reads the feed of ns $1 after Position ($2, $3): the appends needed for
-- $4 events, at most $5 of them ($4 + 1 reads $4 events whenever there
-- are as many: the first may have been read whole), whole, so up to $4
-- events and the rest of the last append. The appends come in Position
-- order, but the events of one append do not when it was trimmed in part
-- (its kept events come after its live ones): the caller orders each
-- append's events by offset, and keeps $4. So the server sorts nothing. Only appends of transactions below the snapshot's xmin
-- are read: every one of them has ended, so no event can later appear
-- below what this returns. The appends come from timebox_feed (one row
-- each, an index range scan of its key), their events from the live log
-- (a range of its key, checked against the xid, since an archived
-- aggregate may be appended again at the same sequences) and from
-- timebox_feed_kept, where trimming and archiving move them.
--
-- One more row, whose xid is -1 (no Position has it), says whether ns
-- holds committed appends after Commit $2 that this read cannot return
-- yet because an older transaction is still open: off 1 if so, else 0
-- (only meaningful when no event came back; its other columns are
-- placeholders). Callers find it by its xid, wherever it comes.
(
SELECT x.xid, x.off, x.aggregate, x.seq, x.sec, x.nsec, x.type, x.data,
       x.id, x.metadata
FROM (
    -- The appends needed: those with fewer than $4 unread events before
    -- them, so the join below reads about $4 events whatever plan it
    -- gets. Only the first can hold events already read (skip).
    SELECT w.xid, w.off, w.aggregate, w.seq, w.n
    FROM (
        SELECT f.xid, f.off, f.aggregate, f.seq, f.n,
               sum(f.n - f.skip) OVER (ORDER BY f.xid, f.off ROWS UNBOUNDED PRECEDING)
                   - (f.n - f.skip) AS before
        FROM (
            SELECT f.xid, f.off, f.aggregate, f.seq, f.n,
                   CASE WHEN f.xid = $2::bigint
                        THEN least(f.n, greatest(0, $3::integer + 1 - f.off))
                        ELSE 0 END AS skip
            FROM timebox_feed AS f
            -- From the append holding offset $3 of Commit $2 (Commit 1,
            -- the back-filled one, has a row per aggregate), so that the
            -- rows of appends read whole are not scanned again.
            WHERE f.ns = $1
              AND (f.xid, f.off) >= ($2::bigint, coalesce((
                  SELECT max(g.off) FROM timebox_feed AS g
                  WHERE g.ns = $1 AND g.xid = $2::bigint AND g.off <= $3::integer
              ), 0))
              AND f.xid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
            ORDER BY f.xid, f.off
            LIMIT $5
        ) AS f
    ) AS w
    WHERE w.before < $4
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
ORDER BY a.xid, a.off
)
UNION ALL
-- Rows above $2 are not read above only when their xid is not below xmin
-- (the same snapshot): committed, held back by an older transaction.
SELECT -1, EXISTS (
           SELECT 1 FROM timebox_feed AS f
           WHERE f.ns = $1 AND f.xid > $2::bigint
       )::integer,
       '', 0, 0, 0, ''::bytea, ''::bytea, NULL::bytea, NULL::bytea
