-- Milliseconds until the first lease of ns $1 runs out (0 if one already
-- has); NULL when no record is leased.
SELECT greatest(0, ceil(extract(epoch FROM
       min(leased_until) - clock_timestamp()) * 1000))::bigint
FROM timebox_archive
WHERE ns = $1 AND leased_until IS NOT NULL
