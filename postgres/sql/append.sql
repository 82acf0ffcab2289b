-- The append (timebox_append in schema.sql): true when written, false
-- when the head was not at $3. $4..$9 are the events' seconds,
-- nanoseconds, types, data, IDs and encoded metadata, one array element
-- per event; $10 notifies the feed's channel; $11..$15 the index change
-- (NULL: none).
SELECT timebox_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
