-- Deletes record $2 of ns $1 once its handler succeeded.
DELETE FROM timebox_archive WHERE ns = $1 AND id = $2
