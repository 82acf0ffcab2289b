-- Leases the oldest available record of ns $1 for $2 milliseconds and
-- returns it with its lease number; no row when none is available. SKIP
-- LOCKED lets consumers claiming at once take different records; a record
-- stays invisible to the others until its lease runs out.
UPDATE timebox_archive AS a
SET leased_until = clock_timestamp() + $2 * interval '1 millisecond',
    lease = a.lease + 1
WHERE a.ns = $1 AND a.id = (
    SELECT c.id FROM timebox_archive AS c
    WHERE c.ns = $1
      AND (c.leased_until IS NULL OR c.leased_until <= clock_timestamp())
    ORDER BY c.id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
RETURNING a.id, a.lease, a.aggregate, a.snapshot_seq, a.snapshot,
          a.seqs, a.secs, a.nsecs, a.types, a.datas, a.ids, a.metas
