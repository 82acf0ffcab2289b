-- Timebox schema. Run on open, under an advisory lock, inside one
-- transaction; every statement is idempotent, so many processes may open
-- at once and an up-to-date database is left unchanged.
--
-- ns is the store's Prefix: many stores share these tables. aggregate is
-- the ID as codec.EncodeID prints it (printable ASCII), compared bytewise
-- (COLLATE "C") so the IDs under a prefix of whole parts are one index
-- range. Everything a user supplies other than IDs (event types and data,
-- snapshots, statuses, labels) is bytea, so any bytes round-trip.
-- Timestamps are Unix seconds plus nanoseconds: timestamptz keeps only
-- microseconds.

-- One row per live aggregate: its head (next sequence) and its latest
-- snapshot, if any. Appends advance head with a conditional UPDATE; this
-- row is what serialises writers on one aggregate, and what
-- ListAggregates reads.
CREATE TABLE IF NOT EXISTS timebox_snapshot (
    ns        text COLLATE "C" NOT NULL,
    aggregate text COLLATE "C" NOT NULL,
    head      bigint NOT NULL,
    seq       bigint,
    data      bytea,
    PRIMARY KEY (ns, aggregate)
);

-- The event log. The primary key is the last line of defence against two
-- events at one sequence, and serves every event read.
CREATE TABLE IF NOT EXISTS timebox_events (
    ns        text COLLATE "C" NOT NULL,
    aggregate text COLLATE "C" NOT NULL,
    seq       bigint NOT NULL,
    sec       bigint NOT NULL,
    nsec      integer NOT NULL,
    type      bytea NOT NULL,
    data      bytea NOT NULL,
    PRIMARY KEY (ns, aggregate, seq)
);

-- Schema 4: the event's ID and its metadata (codec.AppendMetadata; NULL
-- when it has none). Events written before schema 4 have neither.
ALTER TABLE timebox_events ADD COLUMN IF NOT EXISTS id bytea;
ALTER TABLE timebox_events ADD COLUMN IF NOT EXISTS metadata bytea;

-- Status (kind 0, name '') and labels (kind 1, name = label). sec and nsec
-- hold the time the aggregate entered its status; 0 for labels.
CREATE TABLE IF NOT EXISTS timebox_index (
    ns        text COLLATE "C" NOT NULL,
    aggregate text COLLATE "C" NOT NULL,
    kind      smallint NOT NULL,
    name      bytea NOT NULL,
    value     bytea NOT NULL,
    sec       bigint NOT NULL,
    nsec      integer NOT NULL,
    PRIMARY KEY (ns, aggregate, kind, name)
);

-- Serves status lists in entry order, label values and label lookups, all
-- as index-only range scans.
CREATE INDEX IF NOT EXISTS timebox_index_lookup
    ON timebox_index (ns, kind, name, value, sec, nsec, aggregate);

-- timebox_save_snapshot stores a snapshot unless a newer one is stored,
-- moves the head up to it, and with p_trim deletes the events below the
-- stored snapshot. It creates the head row of an aggregate that has none.
CREATE OR REPLACE FUNCTION timebox_save_snapshot(
    p_ns text, p_aggregate text, p_seq bigint, p_data bytea, p_trim boolean
) RETURNS void LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    stored bigint;
BEGIN
    -- This commits durably, like an append: a snapshot beyond the head
    -- is the only record of a seeded aggregate, and a trim has deleted
    -- the events it covers.
    INSERT INTO timebox_snapshot AS s (ns, aggregate, head, seq, data)
    VALUES (p_ns, p_aggregate, p_seq, p_seq, p_data)
    ON CONFLICT (ns, aggregate) DO UPDATE
    SET head = greatest(s.head, excluded.head),
        seq = excluded.seq, data = excluded.data
    WHERE s.seq IS NULL OR s.seq <= excluded.seq;

    IF NOT p_trim THEN
        RETURN;
    END IF;
    SELECT s.seq INTO stored FROM timebox_snapshot s
    WHERE s.ns = p_ns AND s.aggregate = p_aggregate;
    DELETE FROM timebox_events e
    WHERE e.ns = p_ns AND e.aggregate = p_aggregate AND e.seq < stored;
END;
$$;

-- Archived aggregates waiting for a consumer: the snapshot (empty data,
-- sequence 0, when there was none) and the events as parallel arrays in
-- sequence order. A consumer leases a record (leased_until, lease counts
-- the leases) before handing it to its handler and deletes it after; a
-- lease that runs out makes the record available again.
CREATE TABLE IF NOT EXISTS timebox_archive (
    ns           text COLLATE "C" NOT NULL,
    id           bigint GENERATED ALWAYS AS IDENTITY,
    aggregate    text COLLATE "C" NOT NULL,
    snapshot_seq bigint NOT NULL,
    snapshot     bytea NOT NULL,
    seqs         bigint[] NOT NULL,
    secs         bigint[] NOT NULL,
    nsecs        integer[] NOT NULL,
    types        bytea[] NOT NULL,
    datas        bytea[] NOT NULL,
    leased_until timestamptz,
    lease        bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (ns, id)
);

-- Schema 4: the archived events' IDs and encoded metadata, in sequence
-- order like the other arrays; NULL for records archived before.
ALTER TABLE timebox_archive ADD COLUMN IF NOT EXISTS ids bytea[];
ALTER TABLE timebox_archive ADD COLUMN IF NOT EXISTS metas bytea[];

-- timebox_archive_aggregate moves an aggregate's snapshot, events and
-- index rows into one timebox_archive record, in one transaction, and
-- wakes the consumers listening on channel timebox_archive (payload: the
-- ns). It returns false, changing nothing, for an unknown aggregate. The
-- head row is locked first: every append updates it, so none can commit
-- events in between, and each later statement here reads them all.
CREATE OR REPLACE FUNCTION timebox_archive_aggregate(
    p_ns text, p_aggregate text
) RETURNS boolean LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    snap_seq bigint;
    snap_data bytea;
BEGIN
    SELECT s.seq, s.data INTO snap_seq, snap_data FROM timebox_snapshot s
    WHERE s.ns = p_ns AND s.aggregate = p_aggregate
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    WITH evs AS (
        DELETE FROM timebox_events e
        WHERE e.ns = p_ns AND e.aggregate = p_aggregate
        RETURNING e.seq, e.sec, e.nsec, e.type, e.data, e.id, e.metadata
    )
    INSERT INTO timebox_archive
        (ns, aggregate, snapshot_seq, snapshot, seqs, secs, nsecs, types, datas,
         ids, metas)
    SELECT p_ns, p_aggregate, coalesce(snap_seq, 0), coalesce(snap_data, ''),
           coalesce(array_agg(evs.seq ORDER BY evs.seq), '{}'),
           coalesce(array_agg(evs.sec ORDER BY evs.seq), '{}'),
           coalesce(array_agg(evs.nsec ORDER BY evs.seq), '{}'),
           coalesce(array_agg(evs.type ORDER BY evs.seq), '{}'),
           coalesce(array_agg(evs.data ORDER BY evs.seq), '{}'),
           coalesce(array_agg(evs.id ORDER BY evs.seq), '{}'),
           coalesce(array_agg(evs.metadata ORDER BY evs.seq), '{}')
    FROM evs;
    DELETE FROM timebox_index x WHERE x.ns = p_ns AND x.aggregate = p_aggregate;
    DELETE FROM timebox_snapshot s WHERE s.ns = p_ns AND s.aggregate = p_aggregate;
    PERFORM pg_notify('timebox_archive', p_ns);
    RETURN true;
END;
$$;

-- The version marker NewPersistence checks before migrating: when it
-- matches, the schema is current and no lock is taken; when it is newer
-- than the code's, NewPersistence refuses to open rather than rewrite it.
-- Version 2: snapshots commit durably (1 saved them with
-- synchronous_commit off). Version 3: archiving (timebox_archive).
-- Version 4: timebox_events.id and .metadata, and the archive's ids and
-- metas.
COMMENT ON TABLE timebox_snapshot IS 'timebox schema 4';
