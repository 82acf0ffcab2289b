-- A batch of one event at sequence $3, if the head moved: the common case,
-- with scalar parameters, since unnest of arrays (append_events.sql)
-- costs the server more than the rest of the append.
, appended AS (
    INSERT INTO timebox_events (ns, aggregate, seq, sec, nsec, type, data, id, metadata)
    SELECT $1, $2, $3, $4::bigint, $5::integer, $6::bytea, $7::bytea,
           $9::bytea, $10::bytea
    WHERE EXISTS (SELECT 1 FROM advanced)
)
