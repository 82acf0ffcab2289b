package postgres

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// schemaVersion is the version in the comment schema.sql leaves on
// timebox_snapshot ("timebox schema N"). Change both together whenever
// schema.sql changes.
const schemaVersion = 8

// versionPrefix begins the version comment on timebox_snapshot.
const versionPrefix = "timebox schema "

// Errors returned by NewPersistence when the database holds tables it
// cannot use. Nothing was changed.
var (
	// ErrSchemaMismatch means a table of the schema exists without a
	// column this package needs, or with the column of another type:
	// another program's table of that name, or a damaged one. The error
	// names the table and the column.
	ErrSchemaMismatch = errors.New("postgres: schema mismatch")

	// ErrSchemaTooNew means the tables were migrated by a newer version
	// of this package, which this one must not rewrite: upgrade it.
	ErrSchemaTooNew = errors.New("postgres: schema is newer than this version of timebox")
)

// addedColumns are the columns a migration adds to an existing table: an
// older table may lack them until it is migrated.
var addedColumns = map[string]bool{
	"timebox_events.id": true, "timebox_events.metadata": true, // version 4
	"timebox_archive.ids": true, "timebox_archive.metas": true, // version 4
	"timebox_snapshot.xid": true, "timebox_events.xid": true, // version 5
	"timebox_events.off":      true, // version 5
	"timebox_consumers.epoch": true, // version 7
}

// schemaColumns lists, per table of schema.sql, each column and its type
// as format_type prints it.
var schemaColumns = map[string]map[string]string{
	"timebox_snapshot": {
		"ns": "text", "aggregate": "text", "head": "bigint",
		"seq": "bigint", "data": "bytea", "xid": "bigint",
	},
	"timebox_events": {
		"ns": "text", "aggregate": "text", "seq": "bigint", "sec": "bigint",
		"nsec": "integer", "type": "bytea", "data": "bytea",
		"id": "bytea", "metadata": "bytea", "xid": "bigint", "off": "integer",
	},
	"timebox_feed": {
		"ns": "text", "xid": "bigint", "off": "integer", "aggregate": "text",
		"seq": "bigint", "n": "integer",
	},
	"timebox_feed_kept": {
		"ns": "text", "xid": "bigint", "off": "integer", "aggregate": "text",
		"seq": "bigint", "sec": "bigint", "nsec": "integer", "type": "bytea",
		"data": "bytea", "id": "bytea", "metadata": "bytea",
	},
	"timebox_consumers": {
		"ns": "text", "name": "text", "part": "integer", "parts": "integer",
		"xid": "bigint", "off": "bigint", "owner": "text",
		"expires": "timestamp with time zone", "epoch": "bigint",
	},
	"timebox_index": {
		"ns": "text", "aggregate": "text", "kind": "smallint", "name": "bytea",
		"value": "bytea", "sec": "bigint", "nsec": "integer",
	},
	"timebox_archive": {
		"ns": "text", "id": "bigint", "aggregate": "text",
		"snapshot_seq": "bigint", "snapshot": "bytea", "seqs": "bigint[]",
		"secs": "bigint[]", "nsecs": "integer[]", "types": "bytea[]",
		"datas": "bytea[]", "leased_until": "timestamp with time zone",
		"lease": "bigint", "ids": "bytea[]", "metas": "bytea[]",
	},
}

// migrationLock is the advisory lock key that serialises migrations of
// every process sharing the database ("timebox" in ASCII).
const migrationLock int64 = 0x74696d65626f78

var (
	//go:embed sql/schema.sql
	schemaSQL string
	//go:embed sql/version.sql
	versionSQL string
	//go:embed sql/plan_settings.sql
	planSettingsSQL string
	//go:embed sql/columns.sql
	columnsSQL string
	//go:embed sql/append.sql
	appendSQL string
	//go:embed sql/check_head.sql
	checkHeadSQL string
	//go:embed sql/load_events.sql
	loadEventsSQL string
	//go:embed sql/load_snapshot.sql
	loadSnapshotSQL string
	//go:embed sql/save_snapshot.sql
	saveSnapshotSQL string
	//go:embed sql/save_snapshot_if_head.sql
	saveSnapshotIfHeadSQL string
	//go:embed sql/status.sql
	statusSQL string
	//go:embed sql/list_status.sql
	listStatusSQL string
	//go:embed sql/archive.sql
	archiveSQL string
	//go:embed sql/archive_claim.sql
	archiveClaimSQL string
	//go:embed sql/archive_release.sql
	archiveReleaseSQL string
	//go:embed sql/archive_delete.sql
	archiveDeleteSQL string
	//go:embed sql/archive_next_expiry.sql
	archiveNextExpirySQL string
	//go:embed sql/label_values.sql
	labelValuesSQL string
	//go:embed sql/list_label.sql
	listLabelSQL string
	//go:embed sql/list_aggregates.sql
	listAggregatesSQL string
	//go:embed sql/list_all.sql
	listAllSQL string
	//go:embed sql/read_feed.sql
	readFeedSQL string
	//go:embed sql/feed_notify.sql
	feedNotifySQL string
	//go:embed sql/consumer_claim.sql
	consumerClaimSQL string
	//go:embed sql/consumer_commit.sql
	consumerCommitSQL string
	//go:embed sql/consumer_release.sql
	consumerReleaseSQL string
	//go:embed sql/consumer_list.sql
	consumerListSQL string
	//go:embed sql/consumer_reset.sql
	consumerResetSQL string
	//go:embed sql/consumer_delete.sql
	consumerDeleteSQL string
)

// migrate brings the schema up to date. It refuses a schema newer than
// this code's (ErrSchemaTooNew) and tables it cannot use
// (ErrSchemaMismatch) before changing anything. A current schema is
// detected without taking any lock; otherwise schema.sql runs in one
// transaction under an advisory lock, so processes opening at once take
// turns and the later ones find nothing to do.
func migrate(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) error {
	if err := checkColumns(ctx, pool); err != nil {
		return err
	}
	version, err := readVersion(ctx, pool)
	if err != nil {
		return err
	}
	if version == schemaVersion {
		return nil
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrationLock)
		if err != nil {
			return err
		}
		// Another process may have migrated while this one waited.
		if version, err = readVersion(ctx, tx); err != nil || version == schemaVersion {
			return err
		}
		// The pool's sessions disable sequential scans (pool.go); the
		// back-fills of older versions read whole tables.
		if _, err = tx.Exec(ctx, "SET LOCAL enable_seqscan = on"); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, schemaSQL)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	if version != schemaVersion {
		log.Info("migrated schema", "from", version, "to", schemaVersion)
	}
	return nil
}

// querier is a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// readVersion returns the schema version of the database, 0 when it has
// no timebox_snapshot table or one without a comment. It returns ErrSchemaTooNew for a version
// above schemaVersion, and ErrSchemaMismatch when timebox_snapshot carries
// a comment that is no version of this package.
func readVersion(ctx context.Context, q querier) (int, error) {
	var exists bool
	var comment string
	if err := q.QueryRow(ctx, versionSQL).Scan(&exists, &comment); err != nil {
		return 0, fmt.Errorf("postgres: read schema version: %w", err)
	}
	if !exists || comment == "" {
		return 0, nil
	}
	digits, ok := strings.CutPrefix(comment, versionPrefix)
	version, err := strconv.Atoi(digits)
	switch {
	case !ok || err != nil || version < 1:
		return 0, fmt.Errorf("%w: table timebox_snapshot has comment %q, "+
			"not a timebox schema version", ErrSchemaMismatch, comment)
	case version > schemaVersion:
		return 0, fmt.Errorf("%w: the database is at version %d, "+
			"this code knows up to %d", ErrSchemaTooNew, version, schemaVersion)
	}
	return version, nil
}

// checkColumns returns ErrSchemaMismatch, naming the table and column,
// when a table of the schema exists without a column it needs or with the
// column of another type. Missing tables are fine: migrate creates them.
func checkColumns(ctx context.Context, q querier) error {
	tables := slices.Sorted(maps.Keys(schemaColumns))
	rows, _ := q.Query(ctx, columnsSQL, tables)
	have := map[string]map[string]string{}
	var tab, col, typ string
	_, err := pgx.ForEachRow(rows, []any{&tab, &col, &typ}, func() error {
		if have[tab] == nil {
			have[tab] = map[string]string{}
		}
		have[tab][col] = typ
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: read table columns: %w", err)
	}
	for _, table := range tables {
		cols, ok := have[table]
		if !ok {
			continue
		}
		for _, name := range slices.Sorted(maps.Keys(schemaColumns[table])) {
			want := schemaColumns[table][name]
			switch got, ok := cols[name]; {
			case !ok && addedColumns[table+"."+name]:
			case !ok:
				return fmt.Errorf("%w: table %s has no column %s",
					ErrSchemaMismatch, table, name)
			case got != want:
				return fmt.Errorf("%w: column %s.%s is %s, want %s",
					ErrSchemaMismatch, table, name, got, want)
			}
		}
	}
	return nil
}
