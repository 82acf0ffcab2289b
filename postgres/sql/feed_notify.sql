-- Wakes feed readers LISTENing on timebox_feed (payload: the ns). Its own
-- transaction, after the appends it announces have committed, with
-- synchronous_commit off: a notification needs no durable commit.
SELECT set_config('synchronous_commit', 'off', true),
       pg_notify('timebox_feed', $1)
