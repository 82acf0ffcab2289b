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

-- timebox_append appends a batch at p_expected in one call: it advances
-- the head row only if it is at p_expected, then inserts the events and
-- applies the status (NULL: unchanged, '': cleared) and label changes
-- (value '': removed). It returns no rows on success. On conflict it
-- writes nothing and returns the head in a row whose seq is NULL, followed
-- by the stored events from p_expected to the head, ascending.
--
-- Each statement of a plpgsql function takes a fresh snapshot under READ
-- COMMITTED, so the conflict read sees the writer the UPDATE waited for.
CREATE OR REPLACE FUNCTION timebox_append(
    p_ns text, p_aggregate text, p_expected bigint,
    p_secs bigint[], p_nsecs integer[], p_types bytea[], p_data bytea[],
    p_status bytea, p_status_sec bigint, p_status_nsec integer,
    p_label_names bytea[], p_label_values bytea[]
) RETURNS TABLE (
    head bigint, seq bigint, sec bigint, nsec integer, type bytea, data bytea
) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    n bigint := coalesce(cardinality(p_types), 0);
    h bigint;
BEGIN
    IF n = 0 THEN
        SELECT s.head INTO h FROM timebox_snapshot s
        WHERE s.ns = p_ns AND s.aggregate = p_aggregate;
        IF coalesce(h, 0) = p_expected THEN
            RETURN;
        END IF;
        h := NULL;
    ELSIF p_expected = 0 THEN
        INSERT INTO timebox_snapshot AS s (ns, aggregate, head)
        VALUES (p_ns, p_aggregate, n)
        ON CONFLICT (ns, aggregate) DO UPDATE SET head = n
        WHERE s.head = 0
        RETURNING s.head INTO h;
    ELSE
        UPDATE timebox_snapshot s SET head = s.head + n
        WHERE s.ns = p_ns AND s.aggregate = p_aggregate
          AND s.head = p_expected
        RETURNING s.head INTO h;
    END IF;

    IF h IS NULL THEN
        SELECT coalesce(max(s.head), 0) INTO h FROM timebox_snapshot s
        WHERE s.ns = p_ns AND s.aggregate = p_aggregate;
        RETURN QUERY
            SELECT h, NULL::bigint, NULL::bigint, NULL::integer,
                   NULL::bytea, NULL::bytea
            UNION ALL
            (SELECT h, e.seq, e.sec, e.nsec, e.type, e.data
             FROM timebox_events e
             WHERE e.ns = p_ns AND e.aggregate = p_aggregate
               AND e.seq >= p_expected AND e.seq < h
             ORDER BY e.seq);
        RETURN;
    END IF;

    INSERT INTO timebox_events (ns, aggregate, seq, sec, nsec, type, data)
    SELECT p_ns, p_aggregate, p_expected + b.i - 1,
           b.sec, b.nsec, b.type, b.data
    FROM unnest(p_secs, p_nsecs, p_types, p_data)
         WITH ORDINALITY AS b(sec, nsec, type, data, i);

    IF p_status = '' THEN
        DELETE FROM timebox_index x
        WHERE x.ns = p_ns AND x.aggregate = p_aggregate
          AND x.kind = 0 AND x.name = '';
    ELSIF p_status IS NOT NULL THEN
        INSERT INTO timebox_index AS x
            (ns, aggregate, kind, name, value, sec, nsec)
        VALUES (p_ns, p_aggregate, 0, '', p_status,
                p_status_sec, p_status_nsec)
        ON CONFLICT (ns, aggregate, kind, name) DO UPDATE
        SET value = excluded.value, sec = excluded.sec, nsec = excluded.nsec;
    END IF;

    IF cardinality(p_label_names) > 0 THEN
        DELETE FROM timebox_index x
        USING unnest(p_label_names, p_label_values) AS l(name, value)
        WHERE x.ns = p_ns AND x.aggregate = p_aggregate
          AND x.kind = 1 AND x.name = l.name AND l.value = '';
        INSERT INTO timebox_index AS x
            (ns, aggregate, kind, name, value, sec, nsec)
        SELECT p_ns, p_aggregate, 1, l.name, l.value, 0, 0
        FROM unnest(p_label_names, p_label_values) AS l(name, value)
        WHERE l.value <> ''
        ON CONFLICT (ns, aggregate, kind, name) DO UPDATE
        SET value = excluded.value;
    END IF;
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

-- The version marker NewPersistence checks before migrating: when it
-- matches, the schema is current and no lock is taken.
COMMENT ON TABLE timebox_snapshot IS 'timebox schema 1';
