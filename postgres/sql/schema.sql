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

-- Schema 5: the feed (see DESIGN.md, "Feed"). Every event row carries its
-- Position: xid, the writing transaction's ID (pg_current_xact_id(), as a
-- bigint), and off, its index in the append's batch. The head row keeps
-- the xid of the aggregate's last append, so an append whose transaction
-- ID is not above it fails (timebox_feed_xid) rather than commit events
-- that would sort before their predecessors.
ALTER TABLE timebox_snapshot ADD COLUMN IF NOT EXISTS xid bigint;
ALTER TABLE timebox_events ADD COLUMN IF NOT EXISTS xid bigint;
ALTER TABLE timebox_events ADD COLUMN IF NOT EXISTS off integer;

-- Events written before schema 5 join the feed as one pseudo-commit at 1,
-- below every transaction ID (the first normal one is 3), in (aggregate,
-- sequence) order.
UPDATE timebox_events AS e SET xid = 1, off = b.off
FROM (SELECT ns, aggregate, seq,
             row_number() OVER (PARTITION BY ns ORDER BY aggregate, seq) - 1 AS off
      FROM timebox_events WHERE xid IS NULL) AS b
WHERE e.ns = b.ns AND e.aggregate = b.aggregate AND e.seq = b.seq;
ALTER TABLE timebox_events ALTER COLUMN xid SET NOT NULL;
ALTER TABLE timebox_events ALTER COLUMN off SET NOT NULL;

-- The feed's order: one row per append (not per event, so an append of
-- many events adds one index entry), keyed by its Position: the
-- transaction's xid and the off of its first event (0; the back-filled
-- pseudo-commit at 1 has one row per aggregate). The events are read
-- from timebox_events by (aggregate, seq .. seq + n - 1), checked against
-- xid, or, once trimmed or archived, from timebox_feed_kept.
CREATE TABLE IF NOT EXISTS timebox_feed (
    ns        text COLLATE "C" NOT NULL,
    xid       bigint NOT NULL,
    off       integer NOT NULL,
    aggregate text COLLATE "C" NOT NULL,
    seq       bigint NOT NULL,
    n         integer NOT NULL,
    PRIMARY KEY (ns, xid, off)
);
INSERT INTO timebox_feed (ns, xid, off, aggregate, seq, n)
SELECT e.ns, 1, min(e.off), e.aggregate, min(e.seq), count(*)
FROM timebox_events AS e
WHERE e.xid = 1
  AND NOT EXISTS (SELECT 1 FROM timebox_feed AS f WHERE f.ns = e.ns AND f.xid = 1)
GROUP BY e.ns, e.aggregate;

-- Events that TrimEvents (timebox_save_snapshot) and Archive
-- (timebox_archive_aggregate) removed from the live log, kept for the
-- feed, which reads both tables. A row moves in the transaction that
-- deletes it, so every snapshot sees it in exactly one of the two.
CREATE TABLE IF NOT EXISTS timebox_feed_kept (
    ns        text COLLATE "C" NOT NULL,
    xid       bigint NOT NULL,
    off       integer NOT NULL,
    aggregate text COLLATE "C" NOT NULL,
    seq       bigint NOT NULL,
    sec       bigint NOT NULL,
    nsec      integer NOT NULL,
    type      bytea NOT NULL,
    data      bytea NOT NULL,
    id        bytea,
    metadata  bytea,
    PRIMARY KEY (ns, xid, off)
);

-- timebox_feed_xid returns this transaction's ID as a bigint, or fails
-- with serialization_failure (40001, retried by the Store) when it is not
-- above prev, the xid of the aggregate's previous append: a transaction
-- that took its ID before the append it waited for must not commit events
-- that sort before that append's. With p_notify it also notifies channel
-- timebox_feed with payload p_ns, delivered when the append commits.
CREATE OR REPLACE FUNCTION timebox_feed_xid(
    prev bigint, p_ns text, p_notify boolean
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    cur bigint := pg_current_xact_id()::text::bigint;
BEGIN
    IF prev IS NOT NULL AND prev >= cur THEN
        RAISE EXCEPTION 'timebox: transaction % is older than the aggregate''s last append %', cur, prev
            USING ERRCODE = 'serialization_failure';
    END IF;
    IF p_notify THEN
        PERFORM pg_notify('timebox_feed', p_ns);
    END IF;
    RETURN cur;
END;
$$;

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

-- timebox_append appends one batch (at least one event) to aggregate
-- p_agg at sequences p_expected, p_expected+1, ... if its head is
-- p_expected, with its row in the feed and its index change, and returns
-- true; when the head is elsewhere it writes nothing and returns false
-- (the caller then reads the conflict: check_head.sql). The events are
-- the arrays p_secs .. p_metas, one element each; p_metas' elements are
-- NULL for no metadata. p_status NULL leaves the status alone, '' clears
-- it, anything else sets it, entered at p_status_sec + p_status_nsec (an
-- aggregate already in that status keeps the time it entered it);
-- p_label_names/p_label_values (NULL: none) set labels, '' removes one.
--
-- One function rather than one statement of data-modifying CTEs: each
-- statement here is simple, so planning them on every run (pool.go) costs
-- little, where the CTE statement cost more to plan than to run (see
-- DESIGN.md, Append).
--
-- The head row is advanced only if it is at p_expected. Under READ
-- COMMITTED a writer that finds the row locked waits, then re-checks the
-- head on the committed row, so of many writers at one head exactly one
-- advances it and the others return false, never a duplicate key. Its xid
-- becomes this transaction's (timebox_feed_xid, which fails with
-- serialization_failure when the aggregate's last append has a larger
-- one, and with p_notify notifies channel timebox_feed); each event row
-- carries it with its offset in the batch.
CREATE OR REPLACE FUNCTION timebox_append(
    p_ns text, p_agg text, p_expected bigint,
    p_secs bigint[], p_nsecs integer[], p_types bytea[], p_datas bytea[],
    p_ids bytea[], p_metas bytea[], p_notify boolean,
    p_status bytea, p_status_sec bigint, p_status_nsec integer,
    p_label_names bytea[], p_label_values bytea[]
) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    v_n bigint := cardinality(p_types);
    v_xid bigint;
BEGIN
    IF p_expected = 0 THEN
        -- Create the head row, or, if a concurrent writer created it
        -- first or a snapshot at 0 left it, advance it only if still at 0.
        INSERT INTO timebox_snapshot AS s (ns, aggregate, head, xid)
        VALUES (p_ns, p_agg, v_n, timebox_feed_xid(NULL, p_ns, p_notify))
        ON CONFLICT (ns, aggregate) DO UPDATE
        SET head = excluded.head, xid = timebox_feed_xid(s.xid, p_ns, false)
        WHERE s.head = 0
        RETURNING s.xid INTO v_xid;
    ELSE
        UPDATE timebox_snapshot AS s
        SET head = s.head + v_n, xid = timebox_feed_xid(s.xid, p_ns, p_notify)
        WHERE s.ns = p_ns AND s.aggregate = p_agg AND s.head = p_expected
        RETURNING s.xid INTO v_xid;
    END IF;
    IF NOT FOUND THEN
        RETURN false;
    END IF;

    IF v_n = 1 THEN
        -- The common case: no unnest, which costs the server more than
        -- the rest of the append.
        INSERT INTO timebox_events
            (ns, aggregate, seq, sec, nsec, type, data, id, metadata, xid, off)
        VALUES (p_ns, p_agg, p_expected, p_secs[1], p_nsecs[1], p_types[1],
                p_datas[1], p_ids[1], p_metas[1], v_xid, 0);
    ELSE
        INSERT INTO timebox_events
            (ns, aggregate, seq, sec, nsec, type, data, id, metadata, xid, off)
        SELECT p_ns, p_agg, p_expected + b.i - 1, b.sec, b.nsec, b.type,
               b.data, b.id, b.metadata, v_xid, b.i - 1
        FROM unnest(p_secs, p_nsecs, p_types, p_datas, p_ids, p_metas)
             WITH ORDINALITY AS b(sec, nsec, type, data, id, metadata, i);
    END IF;
    -- The append's row in the feed.
    INSERT INTO timebox_feed (ns, xid, off, aggregate, seq, n)
    VALUES (p_ns, v_xid, 0, p_agg, p_expected, v_n);

    IF p_status = '' THEN
        DELETE FROM timebox_index AS x
        WHERE x.ns = p_ns AND x.aggregate = p_agg AND x.kind = 0 AND x.name = '';
    ELSIF p_status IS NOT NULL THEN
        INSERT INTO timebox_index AS x (ns, aggregate, kind, name, value, sec, nsec)
        VALUES (p_ns, p_agg, 0, '', p_status, p_status_sec, p_status_nsec)
        ON CONFLICT (ns, aggregate, kind, name) DO UPDATE
        SET value = excluded.value, sec = excluded.sec, nsec = excluded.nsec
        WHERE x.value <> excluded.value;
    END IF;
    IF cardinality(p_label_names) > 0 THEN
        DELETE FROM timebox_index AS x
        USING unnest(p_label_names, p_label_values) AS l(name, value)
        WHERE l.value = ''
          AND x.ns = p_ns AND x.aggregate = p_agg AND x.kind = 1 AND x.name = l.name;
        INSERT INTO timebox_index AS x (ns, aggregate, kind, name, value, sec, nsec)
        SELECT p_ns, p_agg, 1, l.name, l.value, 0, 0
        FROM unnest(p_label_names, p_label_values) AS l(name, value)
        WHERE l.value <> ''
        ON CONFLICT (ns, aggregate, kind, name) DO UPDATE SET value = excluded.value;
    END IF;
    RETURN true;
END;
$$;

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
    -- The feed keeps what the trim removes (timebox_feed_kept).
    WITH trimmed AS (
        DELETE FROM timebox_events e
        WHERE e.ns = p_ns AND e.aggregate = p_aggregate AND e.seq < stored
        RETURNING e.*
    )
    INSERT INTO timebox_feed_kept
        (ns, xid, off, aggregate, seq, sec, nsec, type, data, id, metadata)
    SELECT t.ns, t.xid, t.off, t.aggregate, t.seq, t.sec, t.nsec, t.type,
           t.data, t.id, t.metadata
    FROM trimmed AS t;
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
        RETURNING e.*
    ), kept AS (
        -- The feed keeps the archived events (timebox_feed_kept).
        INSERT INTO timebox_feed_kept
            (ns, xid, off, aggregate, seq, sec, nsec, type, data, id, metadata)
        SELECT evs.ns, evs.xid, evs.off, evs.aggregate, evs.seq, evs.sec,
               evs.nsec, evs.type, evs.data, evs.id, evs.metadata
        FROM evs
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

-- Durable consumers (Store.Consume): one row per partition, each with its
-- checkpoint (the Position xid.off of the last event handled) and its
-- lease (owner NULL when nobody holds it; expires on the server's clock).
-- parts is the consumer's partition count, on every row.
CREATE TABLE IF NOT EXISTS timebox_consumers (
    ns        text COLLATE "C" NOT NULL,
    name      text COLLATE "C" NOT NULL,
    part      integer NOT NULL,
    parts     integer NOT NULL,
    xid       bigint NOT NULL,
    off       bigint NOT NULL,
    owner     text COLLATE "C",
    expires   timestamptz,
    PRIMARY KEY (ns, name, part)
);

-- Schema 7: the consumer's epoch (timebox.Claim), the same on each of its
-- rows, taken from the sequence timebox_consumer_epoch when the consumer
-- is created and on every reset. A sequence never returns a value twice,
-- even to a transaction that rolled back, so a consumer created again
-- after a delete never has an epoch it had before. Consumers created
-- before schema 7 take one each.
CREATE SEQUENCE IF NOT EXISTS timebox_consumer_epoch;
ALTER TABLE timebox_consumers ADD COLUMN IF NOT EXISTS epoch bigint;
WITH e AS MATERIALIZED (
    SELECT d.ns, d.name, nextval('timebox_consumer_epoch') AS epoch
    FROM (SELECT DISTINCT ns, name FROM timebox_consumers
          WHERE epoch IS NULL) AS d
)
UPDATE timebox_consumers AS c SET epoch = e.epoch
FROM e
WHERE c.ns = e.ns AND c.name = e.name;
ALTER TABLE timebox_consumers ALTER COLUMN epoch SET NOT NULL;

-- timebox_consumer_claim gives partition p_part of consumer p_name to
-- p_owner for p_ttl_ms from now, creating the consumer (p_parts rows,
-- checkpoints at 0.0, one new epoch) when it does not exist. It returns
-- status 0 with the checkpoint and the epoch, read from the row the lease
-- is taken on (so a reset is wholly before or after them), 1 when another
-- owner's lease is live, 2 when the consumer has another partition count;
-- on 1 and 2 nothing is written. Row 0 is created first and alone decides
-- who creates the others, so concurrent first claims agree on the
-- partition count and the epoch. Only a claim that finds no row 0 takes
-- an epoch (nextval runs even when the insert then conflicts).
--
-- Schema 7 added the OUT parameter cepoch, a change of the return type,
-- which CREATE OR REPLACE cannot make.
DROP FUNCTION IF EXISTS timebox_consumer_claim(text, text, integer, integer, text, bigint);
CREATE FUNCTION timebox_consumer_claim(
    p_ns text, p_name text, p_part integer, p_parts integer,
    p_owner text, p_ttl_ms bigint,
    OUT status integer, OUT cxid bigint, OUT coff bigint, OUT cepoch bigint
) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    have integer;
    created bigint;
BEGIN
    SELECT c.parts INTO have FROM timebox_consumers c
    WHERE c.ns = p_ns AND c.name = p_name AND c.part = 0;
    IF have IS NULL THEN
        INSERT INTO timebox_consumers AS c (ns, name, part, parts, xid, off, epoch)
        VALUES (p_ns, p_name, 0, p_parts, 0, 0, nextval('timebox_consumer_epoch'))
        ON CONFLICT DO NOTHING
        RETURNING c.epoch INTO created;
        IF FOUND THEN
            INSERT INTO timebox_consumers (ns, name, part, parts, xid, off, epoch)
            SELECT p_ns, p_name, g, p_parts, 0, 0, created
            FROM generate_series(1, p_parts - 1) AS g
            ON CONFLICT DO NOTHING;
        END IF;
        SELECT c.parts INTO have FROM timebox_consumers c
        WHERE c.ns = p_ns AND c.name = p_name AND c.part = 0;
    END IF;
    IF have IS NULL THEN
        -- Deleted meanwhile: the caller claims again later.
        status := 1;
        RETURN;
    ELSIF have <> p_parts THEN
        status := 2;
        RETURN;
    END IF;
    UPDATE timebox_consumers c
    SET owner = p_owner,
        expires = clock_timestamp() + p_ttl_ms * interval '1 millisecond'
    WHERE c.ns = p_ns AND c.name = p_name AND c.part = p_part
      AND (c.owner IS NULL OR c.owner = p_owner OR c.expires <= clock_timestamp())
    RETURNING c.xid, c.off, c.epoch INTO cxid, coff, cepoch;
    IF FOUND THEN
        status := 0;
    ELSE
        status := 1;
    END IF;
END;
$$;

-- The version marker NewPersistence checks before migrating: when it
-- matches, the schema is current and no lock is taken; when it is newer
-- than the code's, NewPersistence refuses to open rather than rewrite it.
-- Version 2: snapshots commit durably (1 saved them with
-- synchronous_commit off). Version 3: archiving (timebox_archive).
-- Version 4: timebox_events.id and .metadata, and the archive's ids and
-- metas. Version 5: the feed (positions, timebox_feed_kept, consumers).
-- Version 6: the append is a function (timebox_append). Version 7: the
-- consumers' epoch (timebox_consumers.epoch, timebox_consumer_epoch).
-- Version 8: timebox_append keeps the status time of an aggregate already
-- in the status it sets.
COMMENT ON TABLE timebox_snapshot IS 'timebox schema 8';
