-- Ends lease $3 of record $2 of ns $1 early, after its handler failed, so
-- the record is available again at once, and wakes the consumers.
WITH released AS (
    UPDATE timebox_archive SET leased_until = NULL
    WHERE ns = $1 AND id = $2 AND lease = $3
    RETURNING ns
)
SELECT pg_notify('timebox_archive', ns) FROM released
