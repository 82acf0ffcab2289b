package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultConnectTimeout bounds connecting when URL sets no
// connect_timeout.
const DefaultConnectTimeout = 10 * time.Second

const (
	// cancelDeadline is how long a query whose context is done may take
	// to stop after the cancel request was sent, before its connection is
	// cut.
	cancelDeadline = 2 * time.Second

	// maxConnecting is how many connections a pool establishes at once.
	maxConnecting = 2

	// keepAlive is the TCP keep-alive idle time and probe interval; three
	// unanswered probes end a connection.
	keepAlive = 5 * time.Second

	// connectBackoffMin and connectBackoffMax bound the wait before a
	// pool's connect that follows failed ones (see poolGuard).
	connectBackoffMin = 20 * time.Millisecond
	connectBackoffMax = 200 * time.Millisecond
)

// poolConfig returns the pool configuration for cfg, guarded by g.
func poolConfig(cfg Config, g *poolGuard) (*pgxpool.Config, error) {
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidURL, err)
	}
	pc.MaxConns = int32(cfg.MaxConns)
	if pc.MinConns > pc.MaxConns {
		pc.MinConns = pc.MaxConns
	}
	// Every statement of this package has an index for its predicate, and
	// a session reuses its statements' plans (plan_cache_mode=auto,
	// PostgreSQL's default): planning a feed read took 0.6 ms, longer than
	// running it, and re-planning the append's statements on every call
	// cost about a sixth of exec-seq (BENCHMARKS.md). But a plan reused
	// is a plan made earlier, maybe while a table was empty: a sequential
	// scan, kept long after the table grew (no ANALYZE need come to
	// invalidate it: autovacuum can be off). With sequential scans
	// disabled, the planner picks an index wherever one serves, so every
	// plan, reused or not, is the index plan. TestPlansUseIndexes checks
	// that.
	if _, ok := pc.ConnConfig.RuntimeParams["enable_seqscan"]; !ok {
		pc.ConnConfig.RuntimeParams["enable_seqscan"] = "off"
	}
	// JIT compilation takes tens of milliseconds, and the server starts it
	// by a plan's estimated cost: a feed read of a few thousand events is
	// estimated above the default jit_above_cost (the join's rows are
	// overestimated), and spent 30-50 ms compiling to run in a few.
	// Every statement here is an index lookup or range, for which it never
	// pays.
	if _, ok := pc.ConnConfig.RuntimeParams["jit"]; !ok {
		pc.ConnConfig.RuntimeParams["jit"] = "off"
	}
	if pc.ConnConfig.ConnectTimeout == 0 {
		pc.ConnConfig.ConnectTimeout = DefaultConnectTimeout
	}
	// A peer that vanishes without closing the connection (a partition, a
	// crashed host) is noticed within about 20 s, not Go's 2.5 minutes.
	dialer := &net.Dialer{KeepAliveConfig: net.KeepAliveConfig{
		Enable: true, Idle: keepAlive, Interval: keepAlive, Count: 3,
	}}
	pc.ConnConfig.DialFunc = dialer.DialContext
	// A done context sends the server a cancel request, so the query
	// stops there too, rather than only cutting the socket.
	pc.ConnConfig.BuildContextWatcherHandler = func(
		c *pgconn.PgConn,
	) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{
			Conn:          c,
			DeadlineDelay: cancelDeadline,
		}
	}
	g.install(pc)
	return pc, nil
}

// poolGuard speeds a pool's recovery from a network fault (a server
// restart, a proxy or firewall cutting connections), which usually kills
// every pooled connection at once:
//
//   - After any connection broke, an idle connection last used before the
//     break is pinged before it is handed out, and replaced if dead.
//     Otherwise each dead one would be handed to a caller in turn, and a
//     write sent on it would end with an unknown outcome instead of going
//     out on a live connection. The ping costs one round trip, and only
//     after a break; otherwise only connections idle for over a second are
//     pinged (pgx's default).
//   - The pool establishes at most a few connections at a time. After a
//     fault every waiting caller asks for a connection at once; the server
//     starts a process for each and they share its CPU, so the first is
//     ready only when nearly all are. Taking turns, the first is ready
//     after one start-up and serves callers while the rest follow
//     (measured on a loaded 2-core machine: 15 ms to the first write after
//     connection cuts, against 130 ms all at once).
//   - After a connect failed, the pool's next connect waits: up to
//     connectBackoffMin after one failure, twice as long after each more
//     in a row, at most connectBackoffMax, drawn from the upper half of
//     that bound; a connect that succeeds ends the series. Every attempt
//     costs the server a process start, failed or not, so clients that
//     retry at once while the network flaps slow every connect to the
//     server, theirs included, until none fits between two faults
//     (measured: four clients reconnecting through a proxy that cut each
//     connection at its first reply made another client's connect take
//     158 ms instead of 12 ms). Retries of calls (timebox's retry) back off
//     per call; this bounds the attempts of the whole pool.
type poolGuard struct {
	// broke is the time (UnixNano) the last broken connection was closed.
	broke atomic.Int64
	// gate holds a token per connection being established.
	gate chan struct{}
	log  *slog.Logger

	// failed counts the connects that failed in a row; lastFail is when
	// the last one failed (UnixNano).
	failed   atomic.Int64
	lastFail atomic.Int64
}

// connectFailed records a connect that failed: its dial, or its session
// start-up.
func (g *poolGuard) connectFailed() {
	g.lastFail.Store(time.Now().UnixNano())
	g.failed.Add(1)
}

// connectWait waits out the backoff after the connects that failed in a
// row, counted from the last failure, and returns nil; or ctx's error
// when ctx ends first.
func (g *poolGuard) connectWait(ctx context.Context) error {
	n := g.failed.Load()
	if n == 0 {
		return nil
	}
	d := connectBackoffMax
	if n < 20 {
		d = min(connectBackoffMin<<(n-1), connectBackoffMax)
	}
	d = d/2 + rand.N(d/2+1)
	wait := time.Until(time.Unix(0, g.lastFail.Load()).Add(d))
	if wait <= 0 {
		return nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func newPoolGuard(connecting int, log *slog.Logger) *poolGuard {
	return &poolGuard{gate: make(chan struct{}, connecting), log: log}
}

func (g *poolGuard) install(pc *pgxpool.Config) {
	pc.BeforeClose = func(c *pgx.Conn) {
		if c.IsClosed() {
			g.broke.Store(time.Now().UnixNano())
			g.log.Debug("connection broke; idle connections are checked before use")
		}
	}
	pc.ShouldPing = func(_ context.Context, p pgxpool.ShouldPingParams) bool {
		idleSince := time.Now().Add(-p.IdleDuration).UnixNano()
		return p.IdleDuration > time.Second || idleSince <= g.broke.Load()
	}
	pc.BeforeConnect = func(_ context.Context, cc *pgx.ConnConfig) error {
		g.gateConnect(cc)
		return nil
	}
}

// gateConnect makes the connection cc describes wait out the connect
// backoff, then hold a place in the gate from its dial until its session
// is ready or the dialled connection is closed, which counts as a failed
// connect. cc is the pool's copy for this one connection; later dials on
// it (cancel requests, also of a connect that failed) hold a place until
// they close, without backoff, and count as nothing.
func (g *poolGuard) gateConnect(cc *pgx.ConnConfig) {
	var last atomic.Pointer[gatedConn]
	var dialed atomic.Bool
	dial := cc.DialFunc
	cc.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		// The first dial is the connect; later ones are cancel requests.
		first := !dialed.Swap(true)
		if first {
			if err := g.connectWait(ctx); err != nil {
				return nil, err
			}
		}
		select {
		case g.gate <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		c, err := dial(ctx, network, addr)
		if err != nil {
			<-g.gate
			if first {
				g.connectFailed()
			}
			return nil, err
		}
		gc := &gatedConn{Conn: c, gate: g.gate}
		if first {
			gc.failed = g.connectFailed
		}
		last.Store(gc)
		return gc, nil
	}
	after := cc.AfterConnect
	cc.AfterConnect = func(ctx context.Context, c *pgconn.PgConn) error {
		g.failed.Store(0)
		if gc := last.Load(); gc != nil {
			gc.pass(true)
		}
		if after != nil {
			return after(ctx, c)
		}
		return nil
	}
}

// gatedConn holds a place in a connect gate until it passes: when its
// session is ready, or when it is closed.
type gatedConn struct {
	net.Conn
	gate   chan struct{}
	once   sync.Once
	failed func()
}

func (c *gatedConn) pass(ok bool) {
	c.once.Do(func() {
		<-c.gate
		if !ok && c.failed != nil {
			c.failed()
		}
	})
}

// Close passes the gate and closes the connection.
func (c *gatedConn) Close() error {
	c.pass(false)
	return c.Conn.Close()
}
