package postgres_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/conformance"
	"github.com/kode4food/timebox/internal/faultproxy"
	"github.com/kode4food/timebox/internal/history"
	"github.com/kode4food/timebox/postgres"
)

// The chaos scenarios run a concurrent workload on a few hot aggregates
// through several Persistence values (standing for processes, each with
// its own pool) on one Prefix, while a fault strikes the real connections
// or the server's sessions, then require that no acknowledged event is
// lost, none is written twice, no gap opens, the history is linearizable
// and the same stores, not rebuilt, write again afterwards. Each scenario
// runs an Exec and a raw-append workload at once against the same fault
// (history.RunChaos). By default a scenario takes a second or two;
// TIMEBOX_CHAOS=1 makes each last a minute or more.

// chaosProcesses is the number of Persistence values per scenario.
const chaosProcesses = 3

// chaosLease is the stores' ArchiveLease, and archiveDrain how long the
// archive load's final drain waits for a redelivery: a consumer whose
// acknowledgement was lost in the fault leaves its record leased.
const (
	chaosLease   = time.Second
	archiveDrain = 2 * chaosLease
)

// chaosStores opens n Persistence values on cfg, and a Store on each; all
// are closed when t ends.
func chaosStores(t *testing.T, cfg postgres.Config, n int) []*timebox.Store {
	t.Helper()
	cfg.ArchiveLease = chaosLease
	return conformance.Stores(t, n, timebox.Config{Hooks: history.Hooks{}}, opener(cfg))
}

// proxied starts a fault proxy in front of cfg's server and returns cfg
// pointing at it.
func proxied(t *testing.T, cfg postgres.Config) (postgres.Config, *faultproxy.Proxy) {
	t.Helper()
	u, err := url.Parse(cfg.URL)
	require.NoError(t, err)
	target := u.Host
	if u.Port() == "" {
		target = net.JoinHostPort(u.Hostname(), "5432")
	}
	px := faultproxy.New(t, target)
	u.Host = px.Addr()
	cfg.URL = u.String()
	return cfg, px
}

// withAppName returns cfg whose sessions carry application_name name, so
// an admin session can find them in pg_stat_activity.
func withAppName(t *testing.T, cfg postgres.Config, name string) postgres.Config {
	t.Helper()
	u, err := url.Parse(cfg.URL)
	require.NoError(t, err)
	q := u.Query()
	q.Set("application_name", name)
	u.RawQuery = q.Encode()
	cfg.URL = u.String()
	return cfg
}

// adminConn opens a session of its own on url, closed when t ends.
func adminConn(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(ctx) })
	return conn
}

// The proxy cuts every connection, both sides, again and again: statements
// in flight are lost before or after the server ran them.
func TestChaosCutConnections(t *testing.T) {
	plan := history.NewPlan()
	cfg, px := proxied(t, testConfig(t))
	stores := chaosStores(t, cfg, chaosProcesses)
	history.RunChaos(t, plan, "postgres", "proxy cuts all connections", stores,
		history.CutConnections(plan, px), history.WithArchive(archiveDrain))
	require.Greater(t, px.Accepted(), int64(chaosProcesses),
		"stores opened no new connections after the cuts")
}

// The proxy forwards statements and swallows their replies, cutting the
// connection: mostly one at a time, now and then every reply for a short
// burst. The writes may have committed, but the callers cannot know; none
// may be applied twice.
func TestChaosDropReplies(t *testing.T) {
	plan := history.NewPlan()
	cfg, px := proxied(t, testConfig(t))
	stores := chaosStores(t, cfg, chaosProcesses)
	history.RunChaos(t, plan, "postgres", "proxy drops replies", stores,
		history.DropReplies(plan, px), history.WithArchive(archiveDrain))
	require.Positive(t, px.Dropped(), "no reply was dropped")
}

// The proxy holds every chunk of traffic in both directions. The long run
// steps the delay up to 4 s each way: a call's 5 s timeout sends a cancel
// request (delayed too, so it arrives after the statement ran) and cuts
// the connection 2 s later (cancelDeadline), before the reply arrives at
// 8 s, so writes the server committed end with ErrUnknownOutcome; new
// sessions cannot finish connecting in time. (At 3 s each way the reply
// would beat the cut and calls would merely succeed late.)
func TestChaosDelay(t *testing.T) {
	plan := history.NewPlan()
	cfg, px := proxied(t, testConfig(t))
	stores := chaosStores(t, cfg, chaosProcesses)
	history.RunChaos(t, plan, "postgres", "proxy delays traffic", stores,
		history.Delay(plan, px, 5*time.Millisecond, 50*time.Millisecond, 4*time.Second),
		history.WithArchive(archiveDrain))
}

// terminateSQL ends up to $2 (all when NULL) sessions named $1, picked at
// random, and returns how many it signalled.
const terminateSQL = `
SELECT count(*) FROM (
	SELECT pid FROM pg_stat_activity
	WHERE application_name = $1 AND pid <> pg_backend_pid()
	ORDER BY random() LIMIT $2
) s WHERE pg_terminate_backend(s.pid)`

// An admin session ends the stores' sessions on the server with
// pg_terminate_backend: alternately all of them and one picked at random.
// The stores' sessions carry an application_name of their own, so no
// other test's session is touched.
func TestChaosTerminateBackend(t *testing.T) {
	plan := history.NewPlan()
	base := testConfig(t)
	cfg := withAppName(t, base, base.Prefix)
	stores := chaosStores(t, cfg, chaosProcesses)
	admin := adminConn(t, base.URL)
	var killed atomic.Int64
	history.RunChaos(t, plan, "postgres", "pg_terminate_backend", stores,
		func(ctx context.Context) error {
			return history.Every(ctx, plan.Window, plan.Pick(80, 300)*time.Millisecond,
				func(round int) error {
					var limit *int64
					if round%2 == 1 {
						limit = new(int64(1))
					}
					var n int64
					err := admin.QueryRow(ctx, terminateSQL, cfg.Prefix, limit).Scan(&n)
					if err != nil {
						return fmt.Errorf("terminate sessions: %w", err)
					}
					killed.Add(n)
					return nil
				})
		}, history.WithArchive(archiveDrain))
	require.Positive(t, killed.Load(), "pg_terminate_backend ended no session")
}

// lockHeadSQL locks the head row of aggregate 0 of each workload (the
// history workload names its aggregates history/<nonce>/<i>) and returns
// how many rows it locked.
const lockHeadSQL = `
SELECT count(*) FROM (
	SELECT 1 FROM timebox_snapshot
	WHERE ns = $1 AND aggregate LIKE 'history:%:0'
	FOR UPDATE
) s`

// An admin session holds a transaction open with the head row of one
// aggregate per workload locked FOR UPDATE, while the workers keep writing
// to it and to the other aggregates; then it rolls back, and does so
// again. Writers to the locked aggregate wait, then all re-check the head
// at once. The long run also holds the lock once for longer than the
// workload's 5 s call timeout, so the waiting statements are cancelled.
func TestChaosLockedHead(t *testing.T) {
	plan := history.NewPlan()
	cfg := testConfig(t)
	stores := chaosStores(t, cfg, chaosProcesses)
	admin := adminConn(t, cfg.URL)
	holds := []time.Duration{plan.Pick(250, 1500) * time.Millisecond}
	if plan.Long {
		holds = append(holds, 2*time.Second, 7*time.Second)
	}
	var locked atomic.Int64
	history.RunChaos(t, plan, "postgres", "long transaction locks a head row", stores,
		func(ctx context.Context) error {
			return history.Every(ctx, plan.Window, plan.Pick(50, 500)*time.Millisecond,
				func(round int) error {
					n, err := holdHeadLock(ctx, admin, cfg.Prefix, holds[round%len(holds)])
					locked.Add(n)
					return err
				})
		}, history.WithArchive(archiveDrain))
	require.Positive(t, locked.Load(), "no head row was locked")
}

// holdHeadLock locks the head rows lockHeadSQL picks in prefix for d,
// then rolls back. It returns the number of rows it locked.
func holdHeadLock(
	ctx context.Context, admin *pgx.Conn, prefix string, d time.Duration,
) (int64, error) {
	tx, err := admin.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	var n int64
	if err := tx.QueryRow(ctx, lockHeadSQL, prefix).Scan(&n); err != nil {
		return 0, fmt.Errorf("lock head rows: %w", err)
	}
	return n, history.Sleep(ctx, d)
}
