package postgres_test

import (
	"context"
	"encoding/json"
	"net"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/testserver"
	"github.com/kode4food/timebox/postgres"
)

func TestOpenClosedPortFails(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())

	p, err := postgres.NewPersistence(postgres.Config{
		URL: "postgres://nobody@" + addr + "/none?sslmode=disable",
	})
	require.Nil(t, p)
	// Refused, not timed out: the open fails as soon as the dial does.
	require.ErrorIs(t, err, syscall.ECONNREFUSED)
}

func TestOpenBadDatabaseFails(t *testing.T) {
	u, err := url.Parse(testserver.PostgresURL(t))
	require.NoError(t, err)
	u.Path = "/timebox_no_such_database"
	p, err := postgres.NewPersistence(postgres.Config{URL: u.String()})
	require.Nil(t, p)
	require.Error(t, err)
}

// TestConcurrentMigration opens several Persistence values at once, as
// processes starting together would, on an empty schema: each must
// succeed, and the schema must be usable afterwards.
func TestConcurrentMigration(t *testing.T) {
	cfg := testConfig(t)
	cfg.URL = withSchema(t, cfg.URL, cfg.Prefix)

	const procs = 4
	ps := make([]*postgres.Persistence, procs)
	errs := make([]error, procs)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range procs {
		wg.Go(func() {
			<-start
			ps[i], errs[i] = postgres.NewPersistence(cfg)
		})
	}
	close(start)
	wg.Wait()
	for i, p := range ps {
		require.NoError(t, errs[i])
		t.Cleanup(func() { _ = p.Close() })
	}

	id := timebox.NewAggregateID("migrated")
	ev := &timebox.Event{Type: "t", Data: []byte(`{}`)}
	for i, p := range ps {
		s, err := p.NewStore(timebox.Config{})
		require.NoError(t, err)
		require.NoError(t, s.AppendEvents(id, int64(i), []*timebox.Event{ev}))
	}
	ids, err := listTables(t, cfg.URL, cfg.Prefix)
	require.NoError(t, err)
	require.Equal(t, []string{
		"timebox_archive", "timebox_consumers", "timebox_events",
		"timebox_feed", "timebox_feed_kept", "timebox_index", "timebox_snapshot",
	}, ids)
}

// withSchema creates a PostgreSQL schema named name, dropped when t ends,
// and returns u with search_path set to it, so the tables are created
// afresh there.
func withSchema(t testing.TB, u, name string) string {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, u)
	require.NoError(t, err)
	defer func() { _ = conn.Close(ctx) }()
	quoted := pgx.Identifier{name}.Sanitize()
	_, err = conn.Exec(ctx, "CREATE SCHEMA "+quoted)
	require.NoError(t, err)
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, u)
		require.NoError(t, err)
		defer func() { _ = conn.Close(ctx) }()
		_, err = conn.Exec(ctx, "DROP SCHEMA "+quoted+" CASCADE")
		require.NoError(t, err)
	})
	pu, err := url.Parse(u)
	require.NoError(t, err)
	q := pu.Query()
	q.Set("search_path", name)
	pu.RawQuery = q.Encode()
	return pu.String()
}

func listTables(t *testing.T, u, schema string) ([]string, error) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, u)
	require.NoError(t, err)
	defer func() { _ = conn.Close(ctx) }()
	rows, _ := conn.Query(ctx, `
		SELECT table_name::text FROM information_schema.tables
		WHERE table_schema = $1 ORDER BY 1`, schema)
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// TestCancelReachesServer blocks an append on a row lock held by another
// connection, then lets its context expire: the append must return the
// context's error, and the server must have stopped the statement rather
// than leave it waiting for the lock.
func TestCancelReachesServer(t *testing.T) {
	cfg := testConfig(t)
	p := newPersistence(t, cfg)
	s, err := p.NewStore(timebox.Config{})
	require.NoError(t, err)
	id := timebox.NewAggregateID("locked")
	ev := &timebox.Event{Type: "t", Data: []byte(`{}`)}
	require.NoError(t, s.AppendEvents(id, 0, []*timebox.Event{ev}))

	ctx := context.Background()
	blocker, err := pgx.Connect(ctx, cfg.URL)
	require.NoError(t, err)
	defer func() { _ = blocker.Close(ctx) }()
	tx, err := blocker.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx,
		"SELECT 1 FROM timebox_snapshot WHERE ns = $1 FOR UPDATE", cfg.Prefix)
	require.NoError(t, err)

	actx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- s.AppendEventsContext(actx, id, 1, []*timebox.Event{ev})
	}()
	waitForLockWaiter(t, blocker)
	cancel()
	err = <-done
	require.ErrorIs(t, err, context.Canceled)
	require.NotErrorIs(t, err, timebox.ErrUnknownOutcome)
	require.Zero(t, lockWaiters(t, blocker))

	require.NoError(t, tx.Rollback(ctx))
	evs, err := s.GetEvents(id, 0)
	require.NoError(t, err)
	require.Len(t, evs, 1)
}

// waitForLockWaiter polls until some backend waits for a lock conn holds.
func waitForLockWaiter(t *testing.T, conn *pgx.Conn) {
	deadline := time.Now().Add(30 * time.Second)
	for lockWaiters(t, conn) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("append never waited for the row lock")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func lockWaiters(t *testing.T, conn *pgx.Conn) int {
	var n int
	err := conn.QueryRow(context.Background(), `
		SELECT count(*) FROM pg_stat_activity
		WHERE pg_backend_pid() = ANY (pg_blocking_pids(pid))`).Scan(&n)
	require.NoError(t, err)
	return n
}

func TestClosedPersistence(t *testing.T) {
	p, err := postgres.NewPersistence(testConfig(t))
	require.NoError(t, err)
	require.NoError(t, p.Close())
	require.NoError(t, p.Close())
	ctx := context.Background()
	id := timebox.NewAggregateID("x")
	_, err = p.LoadEvents(ctx, id, 0)
	require.ErrorIs(t, err, timebox.ErrClosed)
	err = p.Append(ctx, timebox.AppendRequest{ID: id})
	require.ErrorIs(t, err, timebox.ErrClosed)
	_, err = p.ListAggregates(ctx, nil)
	require.ErrorIs(t, err, timebox.ErrClosed)
}

func TestLongIDRefusedBeforeWriting(t *testing.T) {
	st := newStore(t, timebox.Config{})
	id := timebox.NewAggregateID("long", timebox.ID(strings.Repeat("é", 1500)))
	evs := []*timebox.Event{{Type: "t", Data: json.RawMessage(`1`)}}
	require.ErrorIs(t, st.AppendEvents(id, 0, evs), timebox.ErrInvalidAggregateID)
	require.ErrorIs(t, st.PutSnapshot(id, 1, 0), timebox.ErrInvalidAggregateID)
	ids, err := st.ListAggregates(nil)
	require.NoError(t, err)
	require.Empty(t, ids)
}
