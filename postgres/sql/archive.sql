SELECT timebox_archive_aggregate($1, $2)
