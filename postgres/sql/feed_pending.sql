-- Whether ns $1 holds committed appends after Commit $2 that
-- read_feed.sql does not return yet, because an older transaction is
-- still open (their xid is not below the snapshot's xmin). Only called
-- when read_feed.sql returned nothing after ($2, off): the rest of the
-- append at $2 has been read.
SELECT EXISTS (
    SELECT 1 FROM timebox_feed AS f
    WHERE f.ns = $1 AND f.xid > $2::bigint
)
