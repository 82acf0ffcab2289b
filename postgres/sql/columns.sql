-- The columns of the tables named in $1 that exist on the search path,
-- with their types as format_type prints them.
SELECT t.name, a.attname::text, format_type(a.atttypid, a.atttypmod)
FROM unnest($1::text[]) AS t(name)
JOIN pg_attribute AS a ON a.attrelid = to_regclass(t.name)
WHERE a.attnum > 0 AND NOT a.attisdropped
