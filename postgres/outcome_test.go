package postgres_test

import (
	"context"
	"net/url"
	"testing"

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
