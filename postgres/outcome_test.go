package postgres_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/faultproxy"
)

// TestLostReplyIsUnknownOutcome swallows the reply to an append the
// server ran: with the Store's retries off, the caller must get
// ErrUnknownOutcome, and the append is there when read back. (With them
// on, the Store re-sends it safely; see the conformance Faults cases.)
func TestLostReplyIsUnknownOutcome(t *testing.T) {
	cfg := testConfig(t)
	u, err := url.Parse(cfg.URL)
	require.NoError(t, err)
	proxy := faultproxy.New(t, u.Host)
	u.Host = proxy.Addr()
	proxied := cfg
	proxied.URL = u.String()
	proxied.MaxConns = 1

	s, err := newPersistence(t, proxied).NewStore(timebox.Config{RetryTimeout: -1})
	require.NoError(t, err)
	id := timebox.NewAggregateID("lost")
	ev := &timebox.Event{Type: "t", Data: []byte(`1`)}
	// The first appends prepare the statements on the one connection, so
	// the dropped request below is the append itself.
	require.NoError(t, s.AppendEvents(id, 0, []*timebox.Event{ev}))
	require.NoError(t, s.AppendEvents(id, 1, []*timebox.Event{ev}))

	proxy.DropNextReply()
	err = s.AppendEventsContext(context.Background(), id, 2, []*timebox.Event{ev})
	require.ErrorIs(t, err, timebox.ErrUnknownOutcome)
	require.Equal(t, int64(1), proxy.Dropped())

	direct, err := newPersistence(t, cfg).NewStore(timebox.Config{})
	require.NoError(t, err)
	evs, err := direct.GetEvents(id, 0)
	require.NoError(t, err)
	require.Len(t, evs, 3)

	// The pool replaces the cut connection.
	require.NoError(t, s.AppendEvents(id, 3, []*timebox.Event{ev}))
}

// TestStrayCancelRetried cancels an append's statement from another
// session while the caller's context is live, as a late cancel request
// meant for an earlier statement on the same connection would: the
// statement was rolled back, so the Store sends it again, and the caller
// sees success, the events stored once.
func TestStrayCancelRetried(t *testing.T) {
	cfg := testConfig(t)
	name := "stray-" + cfg.Prefix
	cfg = withAppName(t, cfg, name)
	cfg.MaxConns = 1
	s, err := newPersistence(t, cfg).NewStore(timebox.Config{})
	require.NoError(t, err)
	id := timebox.NewAggregateID("stray")
	ev := &timebox.Event{Type: "t", Data: []byte(`1`)}
	require.NoError(t, s.AppendEvents(id, 0, []*timebox.Event{ev}))

	// The admin session holds the head row, so the next append waits on
	// the lock, where it is cancelled; then the lock is released.
	admin := adminConn(t, cfg.URL)
	ctx := context.Background()
	tx, err := admin.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	var n int
	require.NoError(t, tx.QueryRow(ctx, `
		SELECT count(*) FROM (SELECT 1 FROM timebox_snapshot
		WHERE ns = $1 FOR UPDATE) s`, cfg.Prefix).Scan(&n))
	require.Equal(t, 1, n)

	done := make(chan error, 1)
	go func() { done <- s.AppendEvents(id, 1, []*timebox.Event{ev, ev}) }()
	cancelled := 0
	deadline := time.Now().Add(30 * time.Second)
	for cancelled == 0 && time.Now().Before(deadline) {
		require.NoError(t, admin.QueryRow(ctx, `
			SELECT count(*) FROM (
				SELECT pid FROM pg_stat_activity
				WHERE application_name = $1 AND wait_event_type = 'Lock'
				AND pid <> pg_backend_pid() OFFSET 0
			) s WHERE pg_cancel_backend(s.pid)`, name).Scan(&cancelled))
		time.Sleep(5 * time.Millisecond)
	}
	require.Equal(t, 1, cancelled, "the append never waited on the lock")
	require.NoError(t, tx.Rollback(ctx))
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("the append did not return after the lock was released")
	}
	evs, err := s.GetEvents(id, 0)
	require.NoError(t, err)
	require.Len(t, evs, 3)
}
