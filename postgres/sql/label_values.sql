-- The distinct values of label $2, in order, one index lookup each (a
-- skip scan): each step finds the next value above the last, so the cost
-- follows the number of values, not of labelled aggregates.
WITH RECURSIVE v AS (
    (SELECT value FROM timebox_index
     WHERE ns = $1 AND kind = 1 AND name = $2
     ORDER BY value LIMIT 1)
    UNION ALL
    SELECT (SELECT x.value FROM timebox_index AS x
            WHERE x.ns = $1 AND x.kind = 1 AND x.name = $2 AND x.value > v.value
            ORDER BY x.value LIMIT 1)
    FROM v WHERE v.value IS NOT NULL
)
SELECT value FROM v WHERE value IS NOT NULL
