SELECT coalesce(obj_description(to_regclass('timebox_snapshot'), 'pg_class'), '')
