package postgres_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/testserver"
	"github.com/kode4food/timebox/postgres"
)

// testMaxConns keeps the suite's many parallel stores within the server's
// connection limit.
const testMaxConns = 8

// testConfig returns a Config on the test server under a Prefix of its
// own, whose rows are deleted when t ends.
func testConfig(t testing.TB) postgres.Config {
	t.Helper()
	cfg := postgres.Config{
		URL:      testserver.PostgresURL(t),
		Prefix:   testserver.Prefix(t),
		MaxConns: testMaxConns,
	}
	t.Cleanup(func() { dropPrefix(t, cfg.URL, cfg.Prefix) })
	return cfg
}

// newPersistence opens a Persistence on cfg, closed when t ends.
func newPersistence(t testing.TB, cfg postgres.Config) *postgres.Persistence {
	t.Helper()
	p, err := postgres.NewPersistence(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// opener returns a function that opens a Persistence on cfg, for
// conformance.Stores.
func opener(cfg postgres.Config) func() (timebox.Backend, error) {
	return func() (timebox.Backend, error) { return postgres.NewPersistence(cfg) }
}

// newStore returns a Store on a fresh Prefix, closed and emptied when t
// ends.
func newStore(t testing.TB, cfg timebox.Config) *timebox.Store {
	t.Helper()
	s, err := newPersistence(t, testConfig(t)).NewStore(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func dropPrefix(t testing.TB, url, prefix string) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Errorf("clean up %s: %v", prefix, err)
		return
	}
	defer func() { _ = conn.Close(ctx) }()
	for _, table := range []string{
		"timebox_events", "timebox_snapshot", "timebox_index", "timebox_archive",
		"timebox_feed", "timebox_feed_kept", "timebox_consumers",
	} {
		_, err := conn.Exec(ctx, "DELETE FROM "+table+" WHERE ns = $1", prefix)
		if err != nil {
			t.Errorf("clean up %s in %s: %v", prefix, table, err)
		}
	}
}
