-- Whether timebox_snapshot exists on the search path, and its comment,
-- which holds the schema version ("timebox schema N").
SELECT to_regclass('timebox_snapshot') IS NOT NULL,
       coalesce(obj_description(to_regclass('timebox_snapshot'), 'pg_class'), '')
