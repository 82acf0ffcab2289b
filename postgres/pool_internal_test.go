package postgres

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/faultproxy"
	"github.com/kode4food/timebox/internal/testserver"
)

// waitFor polls cond until it holds, failing t with what was awaited if
// it does not within a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	const limit = time.Minute
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", limit, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// proxiedPersistence opens a Persistence through a fault proxy.
func proxiedPersistence(t *testing.T, maxConns int) (*Persistence, *faultproxy.Proxy) {
	t.Helper()
	u, err := url.Parse(testserver.PostgresURL(t))
	require.NoError(t, err)
	px := faultproxy.New(t, net.JoinHostPort(u.Hostname(), u.Port()))
	u.Host = px.Addr()
	prefix := testserver.Prefix(t)
	p, err := NewPersistence(Config{URL: u.String(), Prefix: prefix, MaxConns: maxConns})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx := context.Background()
		for _, table := range []string{"timebox_events", "timebox_snapshot", "timebox_index", "timebox_archive"} {
			_, _ = p.pool.Exec(ctx, "DELETE FROM "+table+" WHERE ns = $1", prefix)
		}
		_ = p.Close()
	})
	return p, px
}

// fillPool runs n appends at once, again and again, until the pool holds
// n idle connections.
func fillPool(t *testing.T, p *Persistence, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d idle connections", n), func() bool {
		var wg sync.WaitGroup
		hold := make(chan struct{})
		for range n {
			wg.Go(func() {
				c, err := p.pool.Acquire(context.Background())
				if err == nil {
					<-hold
					c.Release()
				}
			})
		}
		time.Sleep(10 * time.Millisecond)
		close(hold)
		wg.Wait()
		return p.pool.Stat().IdleConns() >= int32(n)
	})
}

// After every pooled connection was cut, at most one call fails: the
// first broken connection makes the pool check the other idle ones
// before handing them out, so the next call gets a live connection.
func TestCutConnectionsFailOneCall(t *testing.T) {
	p, px := proxiedPersistence(t, 8)
	fillPool(t, p, 6)
	id := timebox.NewAggregateID("cut")
	req := timebox.AppendRequest{ID: id}
	ctx := context.Background()
	require.NoError(t, p.Append(ctx, req))

	px.CutAll()
	if err := p.Append(ctx, req); err != nil {
		waitFor(t, "the pool to notice the broken connection", func() bool {
			return p.guard.broke.Load() != 0
		})
	}
	for i := range 5 {
		require.NoError(t, p.Append(ctx, req), "call %d after the cut", i)
	}
}

// However often connections are cut, every place in the connect gate is
// given back: the pool still connects, and once it is idle no connection
// holds a place.
func TestConnectGateReleases(t *testing.T) {
	p, px := proxiedPersistence(t, 8)
	ctx := context.Background()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := range 16 {
		wg.Go(func() {
			id := timebox.NewAggregateID("gate", timebox.ID(fmt.Sprint(i)))
			for {
				select {
				case <-stop:
					return
				default:
				}
				_ = p.Append(ctx, timebox.AppendRequest{ID: id})
			}
		})
	}
	for range 20 {
		px.CutAll()
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	waitFor(t, "every connect to pass the gate", func() bool {
		return len(p.guard.gate) == 0
	})
	require.NoError(t, p.Append(ctx, timebox.AppendRequest{ID: timebox.NewAggregateID("gate")}))
	require.Positive(t, px.Accepted(), "no connection was made")
}

// While every connect fails, the pool spaces its connects out (see
// poolGuard): calls retried back to back for two seconds make a couple of
// dozen connects at most, not one per call (without the backoff, one
// every server start-up: over a hundred on an idle machine). Once the
// server answers again, a call succeeds.
func TestConnectBackoff(t *testing.T) {
	p, px := proxiedPersistence(t, 4)
	ctx := context.Background()
	req := timebox.AppendRequest{ID: timebox.NewAggregateID("backoff")}
	require.NoError(t, p.Append(ctx, req))

	px.DropReplies(true)
	px.CutAll()
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); {
		require.Error(t, p.Append(ctx, req))
	}
	// First attempt at once, then waits of at least 10, 20, 40, 80 ms and
	// 100 ms from then on: at most 24 connects in two seconds, each of
	// which failed. (The proxy also sees the cancel requests pgx sends
	// after a failed connect, which do not wait.)
	failed := p.guard.failed.Load()
	require.Positive(t, failed)
	require.LessOrEqual(t, failed, int64(25))

	px.DropReplies(false)
	waitFor(t, "an append after the faults end", func() bool {
		return p.Append(ctx, req) == nil
	})
	require.Zero(t, p.guard.failed.Load())
}
