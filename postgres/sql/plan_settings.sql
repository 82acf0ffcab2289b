-- The session's settings that decide whether a plan made while a table
-- was small can outlive it (see DESIGN.md, "Which index serves which
-- read"): a reused plan may be a sequential scan unless sequential scans
-- are disabled or every run is planned afresh.
SELECT current_setting('enable_seqscan'), current_setting('plan_cache_mode')
