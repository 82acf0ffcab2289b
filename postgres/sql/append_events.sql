-- The batch, at sequences $3, $3+1, ..., if the head moved.
, appended AS (
    INSERT INTO timebox_events (ns, aggregate, seq, sec, nsec, type, data, id, metadata)
    SELECT $1, $2, $3 + b.i - 1, b.sec, b.nsec, b.type, b.data, b.id, b.metadata
    FROM unnest($4::bigint[], $5::integer[], $6::bytea[], $7::bytea[],
                $9::bytea[], $10::bytea[])
         WITH ORDINALITY AS b(sec, nsec, type, data, id, metadata, i)
    WHERE EXISTS (SELECT 1 FROM advanced)
)
