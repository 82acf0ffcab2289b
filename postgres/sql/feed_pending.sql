-- Whether ns $1 holds committed events after Position ($2, $3) that
-- read_feed.sql does not return yet, because an older transaction is
-- still open (their xid is not below the snapshot's xmin).
SELECT EXISTS (
    SELECT 1 FROM timebox_events AS e
    WHERE e.ns = $1 AND (e.xid, e.off) > ($2::bigint, $3::integer)
)
