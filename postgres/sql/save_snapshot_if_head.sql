-- An Executor's conditional snapshot (SnapshotRequest.IfHead): store it
-- only if the aggregate is live (its head row exists) and its head is
-- exactly the snapshot's sequence, and no newer snapshot is stored;
-- otherwise change nothing. One statement: the UPDATE locks the head row,
-- which every append to the aggregate updates, so the head cannot move
-- between the check and the write; with $5 the events below the snapshot
-- are deleted in the same statement, and kept for the feed in
-- timebox_feed_kept as timebox_save_snapshot keeps them. It returns how
-- many snapshots it stored (1, or 0 when it changed nothing). It never
-- moves a head, and it commits with the session's (durable)
-- synchronous_commit.
WITH s AS (
    UPDATE timebox_snapshot
    SET seq = $3, data = $4
    WHERE ns = $1 AND aggregate = $2 AND head = $3
      AND (seq IS NULL OR seq <= $3)
    RETURNING seq
), d AS (
    DELETE FROM timebox_events e
    USING s
    WHERE $5::boolean AND e.ns = $1 AND e.aggregate = $2 AND e.seq < s.seq
    RETURNING e.ns, e.xid, e.off, e.aggregate, e.seq, e.sec, e.nsec, e.type,
              e.data, e.id, e.metadata
), k AS (
    INSERT INTO timebox_feed_kept
        (ns, xid, off, aggregate, seq, sec, nsec, type, data, id, metadata)
    SELECT * FROM d
)
SELECT count(*) FROM s
