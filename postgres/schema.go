package postgres

import (
	"context"
	_ "embed"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// schemaVersion is the comment schema.sql leaves on timebox_snapshot.
// Change both together whenever schema.sql changes.
const schemaVersion = "timebox schema 2"

// migrationLock is the advisory lock key that serialises migrations of
// every process sharing the database ("timebox" in ASCII).
const migrationLock int64 = 0x74696d65626f78

var (
	//go:embed sql/schema.sql
	schemaSQL string
	//go:embed sql/version.sql
	versionSQL string
	//go:embed sql/append_head_next.sql
	appendHeadNextSQL string
	//go:embed sql/append_head_new.sql
	appendHeadNewSQL string
	//go:embed sql/append_event.sql
	appendEventSQL string
	//go:embed sql/append_events.sql
	appendEventsSQL string
	//go:embed sql/append_index.sql
	appendIndexSQL string
	//go:embed sql/append_conflict.sql
	appendConflictSQL string
	//go:embed sql/check_head.sql
	checkHeadSQL string
	//go:embed sql/head.sql
	headSQL string
	//go:embed sql/load_events.sql
	loadEventsSQL string
	//go:embed sql/load_snapshot.sql
	loadSnapshotSQL string
	//go:embed sql/save_snapshot.sql
	saveSnapshotSQL string
	//go:embed sql/status.sql
	statusSQL string
	//go:embed sql/list_status.sql
	listStatusSQL string
	//go:embed sql/label_values.sql
	labelValuesSQL string
	//go:embed sql/list_label.sql
	listLabelSQL string
	//go:embed sql/list_aggregates.sql
	listAggregatesSQL string
	//go:embed sql/list_all.sql
	listAllSQL string
)

// appendSQL holds the append statements, indexed by whether the
// aggregate is new (the append is at 0), whether the batch has more than
// one event, and whether it changes the index.
var appendSQL = func() (res [2][2][2]string) {
	heads := []string{appendHeadNextSQL, appendHeadNewSQL}
	events := []string{appendEventSQL, appendEventsSQL}
	for h, head := range heads {
		for e, evs := range events {
			res[h][e][0] = head + evs + appendConflictSQL
			res[h][e][1] = head + evs + appendIndexSQL + appendConflictSQL
		}
	}
	return res
}()

// migrate brings the schema up to date. A current schema is detected
// without taking any lock; otherwise schema.sql runs in one transaction
// under an advisory lock, so processes opening at once take turns and the
// later ones find nothing to do.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	var version string
	if err := pool.QueryRow(ctx, versionSQL).Scan(&version); err != nil {
		return fmt.Errorf("postgres: read schema version: %w", err)
	}
	if version == schemaVersion {
		return nil
	}
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrationLock)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, schemaSQL)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	return nil
}
