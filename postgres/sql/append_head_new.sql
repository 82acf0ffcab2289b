-- The head step for an append at 0: create the head row, or, if a
-- concurrent writer created it first or a snapshot at 0 left it, advance
-- it only if still at 0. See append_head_next.sql.
WITH advanced AS (
    INSERT INTO timebox_snapshot AS s (ns, aggregate, head)
    VALUES ($1, $2, $8::bigint)
    ON CONFLICT (ns, aggregate) DO UPDATE SET head = excluded.head
    WHERE s.head = 0 AND $3::bigint = 0
    RETURNING s.head
)
