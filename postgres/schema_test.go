package postgres_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/postgres"
)

// privateSchema returns a Config whose tables live in a schema of their
// own, dropped when t ends, and an admin session on it.
func privateSchema(t *testing.T) (postgres.Config, *pgx.Conn) {
	t.Helper()
	cfg := testConfig(t)
	cfg.URL = withSchema(t, cfg.URL, cfg.Prefix)
	return cfg, adminConn(t, cfg.URL)
}

func tableComment(t *testing.T, admin *pgx.Conn) string {
	t.Helper()
	var c string
	err := admin.QueryRow(context.Background(),
		"SELECT coalesce(obj_description('timebox_snapshot'::regclass, 'pg_class'), '')",
	).Scan(&c)
	require.NoError(t, err)
	return c
}

// A table of the schema's name with other columns (another program's, or
// another version's) fails the open with ErrSchemaMismatch naming the
// table and the column, and nothing is created beside it.
func TestSchemaMismatch(t *testing.T) {
	for _, tc := range []struct {
		name, ddl, msg string
	}{
		{
			"foreign events table",
			"CREATE TABLE timebox_events (id serial PRIMARY KEY, body text)",
			"table timebox_events has no column aggregate",
		},
		{
			"index table missing a column",
			`CREATE TABLE timebox_index (ns text, aggregate text, kind smallint,
				name bytea, value bytea, sec bigint)`,
			"table timebox_index has no column nsec",
		},
		{
			"head of another type",
			`CREATE TABLE timebox_snapshot (ns text, aggregate text, head text,
				seq bigint, data bytea)`,
			"column timebox_snapshot.head is text, want bigint",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, admin := privateSchema(t)
			ctx := context.Background()
			_, err := admin.Exec(ctx, tc.ddl)
			require.NoError(t, err)

			p, err := postgres.NewPersistence(cfg)
			require.Nil(t, p)
			require.ErrorIs(t, err, postgres.ErrSchemaMismatch)
			require.ErrorContains(t, err, tc.msg)
			tables, err := listTables(t, cfg.URL, cfg.Prefix)
			require.NoError(t, err)
			require.Len(t, tables, 1, "open created tables: %v", tables)
		})
	}
}

// A schema migrated by a newer version is refused with ErrSchemaTooNew
// and left as it is; an older one is migrated; a comment that is no
// version is a mismatch.
func TestSchemaVersions(t *testing.T) {
	cfg, admin := privateSchema(t)
	ctx := context.Background()
	newPersistence(t, cfg)
	current := tableComment(t, admin)
	require.Regexp(t, `^timebox schema \d+$`, current)

	_, err := admin.Exec(ctx, "COMMENT ON TABLE timebox_snapshot IS 'timebox schema 999'")
	require.NoError(t, err)
	p, err := postgres.NewPersistence(cfg)
	require.Nil(t, p)
	require.ErrorIs(t, err, postgres.ErrSchemaTooNew)
	require.ErrorContains(t, err, "version 999")
	require.Equal(t, "timebox schema 999", tableComment(t, admin))

	_, err = admin.Exec(ctx, "COMMENT ON TABLE timebox_snapshot IS 'timebox schema 1'")
	require.NoError(t, err)
	newPersistence(t, cfg)
	require.Equal(t, current, tableComment(t, admin))

	_, err = admin.Exec(ctx, "COMMENT ON TABLE timebox_snapshot IS 'orders by day'")
	require.NoError(t, err)
	p, err = postgres.NewPersistence(cfg)
	require.Nil(t, p)
	require.ErrorIs(t, err, postgres.ErrSchemaMismatch)
	require.ErrorContains(t, err, "orders by day")
}

// A snapshot commits durably: saving one does not turn synchronous_commit
// off for its transaction.
func TestSnapshotCommitsDurably(t *testing.T) {
	cfg, admin := privateSchema(t)
	newPersistence(t, cfg)
	ctx := context.Background()
	tx, err := admin.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, "SET LOCAL synchronous_commit = on")
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "SELECT timebox_save_snapshot($1, 'a', 3, 'x', true)",
		cfg.Prefix)
	require.NoError(t, err)
	var setting string
	require.NoError(t, tx.QueryRow(ctx, "SHOW synchronous_commit").Scan(&setting))
	require.Equal(t, "on", setting)
}

// schema4 returns a private schema holding the tables as version 4 left
// them (testdata/schema4.sql), and a connection to it.
func schema4(t *testing.T) (postgres.Config, *pgx.Conn) {
	t.Helper()
	cfg, admin := privateSchema(t)
	ddl, err := os.ReadFile("testdata/schema4.sql")
	require.NoError(t, err)
	_, err = admin.Exec(context.Background(), string(ddl))
	require.NoError(t, err)
	return cfg, admin
}

// A database at schema 4 (testdata/schema4.sql, as version 4 left it) is
// migrated to the feed: its events join the feed before every later
// append, at Commit 1 in (aggregate, sequence) order, and appends go on.
func TestSchemaMigratesFrom4(t *testing.T) {
	cfg, admin := schema4(t)
	ctx := context.Background()
	require.Equal(t, "timebox schema 4", tableComment(t, admin))
	_, err := admin.Exec(ctx, `
		INSERT INTO timebox_snapshot (ns, aggregate, head) VALUES
		    ($1, 'b', 2), ($1, 'a', 1)`, cfg.Prefix)
	require.NoError(t, err)
	_, err = admin.Exec(ctx, `
		INSERT INTO timebox_events (ns, aggregate, seq, sec, nsec, type, data) VALUES
		    ($1, 'b', 0, 0, 0, 'b0', '{}'), ($1, 'a', 0, 0, 0, 'a0', '{}'),
		    ($1, 'b', 1, 0, 0, 'b1', '{}')`, cfg.Prefix)
	require.NoError(t, err)

	p := newPersistence(t, cfg)
	require.Regexp(t, `^timebox schema [5-9]$`, tableComment(t, admin))
	s, err := p.NewStore(timebox.Config{})
	require.NoError(t, err)
	require.NoError(t, s.AppendEvents(timebox.NewAggregateID("a"), 1,
		[]*timebox.Event{{Type: "a1", Data: []byte(`{}`)}}))
	var evs []*timebox.Event
	for len(evs) < 4 {
		got, err := p.ReadFeed(ctx, timebox.FeedRequest{Limit: 10, Wait: time.Second})
		require.NoError(t, err)
		evs = got
	}
	var types []string
	for _, ev := range evs {
		types = append(types, string(ev.Type))
	}
	require.Equal(t, []string{"a0", "b0", "b1", "a1"}, types)
	for i, ev := range evs[:3] {
		require.Equal(t, timebox.Position{Commit: 1, Offset: uint64(i)}, ev.Position)
	}
	require.Greater(t, evs[3].Position.Commit, uint64(2))
}

// The back-filled pseudo-commit of a migrated database holds a
// timebox_feed row per aggregate, many more than a page: read in pages
// of two events, it comes back whole, in (aggregate, sequence) order,
// each page after the last.
func TestSchemaMigratedFeedPages(t *testing.T) {
	cfg, admin := schema4(t)
	ctx := context.Background()
	// 40 aggregates, a00 .. a39, of 1, 2 or 3 events.
	_, err := admin.Exec(ctx, `
		INSERT INTO timebox_events (ns, aggregate, seq, sec, nsec, type, data)
		SELECT $1, 'a' || lpad(i::text, 2, '0'), s, 0, 0,
		       convert_to('a' || lpad(i::text, 2, '0') || '-' || s, 'UTF8'), '{}'
		FROM generate_series(0, 39) i, generate_series(0, i % 3) s`, cfg.Prefix)
	require.NoError(t, err)
	var want []string
	for i := range 40 {
		for s := 0; s <= i%3; s++ {
			want = append(want, fmt.Sprintf("a%02d-%d", i, s))
		}
	}

	p := newPersistence(t, cfg)
	var got []string
	var pos timebox.Position
	for {
		evs, err := p.ReadFeed(ctx, timebox.FeedRequest{After: pos, Limit: 2})
		require.NoError(t, err)
		if len(evs) == 0 {
			break
		}
		require.LessOrEqual(t, len(evs), 2)
		for _, ev := range evs {
			require.Equal(t, timebox.Position{Commit: 1, Offset: uint64(len(got))}, ev.Position)
			got = append(got, string(ev.Type))
			pos = ev.Position
		}
	}
	require.Equal(t, want, got)
}

// A database at schema 6 (testdata/schema6.sql, as version 6 left it) is
// migrated to the consumers' epoch: each existing consumer takes one
// epoch, on all its partitions, with its checkpoints and leases kept; a
// reset then gives all its partitions one new epoch, and a consumer
// created afterwards, even one deleted and created again, an epoch no
// consumer had.
func TestSchemaMigratesFrom6(t *testing.T) {
	cfg, admin := privateSchema(t)
	ctx := context.Background()
	ddl, err := os.ReadFile("testdata/schema6.sql")
	require.NoError(t, err)
	_, err = admin.Exec(ctx, string(ddl))
	require.NoError(t, err)
	require.Equal(t, "timebox schema 6", tableComment(t, admin))
	_, err = admin.Exec(ctx, `
		INSERT INTO timebox_consumers (ns, name, part, parts, xid, off, owner, expires)
		VALUES ($1, 'a', 0, 3, 5, 1, NULL, NULL), ($1, 'a', 1, 3, 7, 0, NULL, NULL),
		       ($1, 'a', 2, 3, 0, 0, 'old', now() - interval '1 minute'),
		       ($1, 'b', 0, 1, 9, 2, NULL, NULL)`, cfg.Prefix)
	require.NoError(t, err)

	p := newPersistence(t, cfg)
	require.Regexp(t, `^timebox schema [7-9]$`, tableComment(t, admin))
	claim := func(name string, part, parts int) timebox.Claim {
		t.Helper()
		c, err := p.ClaimPartition(ctx, timebox.Lease{
			Consumer: name, Partition: part, Partitions: parts,
			Owner: "new", TTL: time.Minute,
		})
		require.NoError(t, err)
		return c
	}
	epochs := func(name string, parts int) uint64 {
		t.Helper()
		first := claim(name, 0, parts).Epoch
		for part := 1; part < parts; part++ {
			require.Equal(t, first, claim(name, part, parts).Epoch,
				"consumer %s partition %d", name, part)
		}
		return first
	}

	a := claim("a", 0, 3)
	require.Equal(t, timebox.Position{Commit: 5, Offset: 1}, a.Checkpoint)
	require.Equal(t, timebox.Position{Commit: 7}, claim("a", 1, 3).Checkpoint)
	require.Equal(t, a.Epoch, epochs("a", 3))
	b := claim("b", 0, 1)
	require.Equal(t, timebox.Position{Commit: 9, Offset: 2}, b.Checkpoint)
	seen := []uint64{a.Epoch, b.Epoch}
	require.NotEqual(t, a.Epoch, b.Epoch)

	require.NoError(t, p.ResetConsumer(ctx, "a", timebox.Position{Commit: 5, Offset: 1}))
	reset := epochs("a", 3)
	require.NotContains(t, seen, reset)
	seen = append(seen, reset)

	c := epochs("c", 2)
	require.NotContains(t, seen, c)
	seen = append(seen, c)
	require.NoError(t, p.DeleteConsumer(ctx, "c"))
	require.NotContains(t, seen, epochs("c", 2))
}
