package postgres_test

import (
	"context"
	"log/slog"
	"maps"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/testlog"
	"github.com/kode4food/timebox/postgres"
)

// countingTracer counts the queries run through a pool.
type countingTracer struct{ n atomic.Int64 }

func (c *countingTracer) TraceQueryStart(
	ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData,
) context.Context {
	c.n.Add(1)
	return ctx
}

func (c *countingTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// A Persistence on the caller's pool runs its statements through that
// pool (with the caller's tracer), and Close leaves the pool open.
func TestExistingPool(t *testing.T) {
	cfg := testConfig(t)
	pc, err := pgxpool.ParseConfig(cfg.URL)
	require.NoError(t, err)
	tracer := &countingTracer{}
	pc.ConnConfig.Tracer = tracer
	pc.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	require.NoError(t, err)
	defer pool.Close()

	p, err := postgres.NewPersistence(postgres.Config{
		Pool: pool, Prefix: cfg.Prefix, URL: "postgres://ignored:1/none",
	})
	require.NoError(t, err)
	st, err := p.NewStore(timebox.Config{})
	require.NoError(t, err)
	id := timebox.NewAggregateID("pooled")
	before := tracer.n.Load()
	require.NoError(t, st.AppendEvents(id, 0, []*timebox.Event{
		{Type: "t", Data: []byte(`{}`)},
	}))
	evs, err := st.GetEvents(id, 0)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	require.Greater(t, tracer.n.Load(), before, "statements bypassed the pool")

	require.NoError(t, st.Close())
	_, err = st.GetEvents(id, 0)
	require.ErrorIs(t, err, timebox.ErrClosed)
	require.NoError(t, pool.Ping(context.Background()), "Close closed the caller's pool")
}

// When the caller closes the pool it passed in, every call fails at once
// with the pool's error: not ErrUnknownOutcome (nothing was sent) and not
// ErrUnavailable, so Consume returns rather than retrying until its ctx
// ends.
func TestCallerClosedPool(t *testing.T) {
	cfg := testConfig(t)
	pool, err := pgxpool.New(context.Background(), cfg.URL)
	require.NoError(t, err)
	p, err := postgres.NewPersistence(postgres.Config{Pool: pool, Prefix: cfg.Prefix})
	require.NoError(t, err)
	st, err := p.NewStore(timebox.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	id := timebox.NewAggregateID("pooled")
	require.NoError(t, st.AppendEvents(id, 0, []*timebox.Event{{Type: "t", Data: []byte(`{}`)}}))
	pool.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for name, err := range map[string]error{
		"append": st.AppendEventsContext(ctx, id, 1, []*timebox.Event{
			{Type: "t", Data: []byte(`{}`)},
		}),
		"archive": st.ArchiveContext(ctx, id),
		"reset":   st.ResetConsumer(ctx, "c", timebox.Position{}),
		"consume": st.Consume(ctx, "c", func(context.Context, *timebox.Event) error {
			return nil
		}),
	} {
		require.ErrorContains(t, err, "closed pool", name)
		require.NotErrorIs(t, err, timebox.ErrUnknownOutcome, name)
		require.NotErrorIs(t, err, timebox.ErrUnavailable, name)
		require.NotErrorIs(t, err, context.DeadlineExceeded, name)
	}
}

// The Persistence logs through Config.Logger: migrating a fresh schema
// is logged there, with the prefix.
func TestLoggerReceivesLogs(t *testing.T) {
	cfg, _ := privateSchema(t)
	var buf testlog.Buffer
	cfg.Logger = slog.New(slog.NewTextHandler(&buf, nil))
	newPersistence(t, cfg)
	require.Contains(t, buf.String(), "migrated schema")
	require.Contains(t, buf.String(), "prefix="+cfg.Prefix)
}

// Opening on sessions that may reuse a plan made while a table was small
// (sequential scans enabled, plans reused: PostgreSQL's defaults, as a
// caller's pool has them) logs a warning that names the fix; the pool's
// own sessions, and a caller's with either setting, do not.
func TestPlanSettingsWarning(t *testing.T) {
	cfg := testConfig(t)
	const fix = "set enable_seqscan=off"
	for _, c := range []struct {
		params map[string]string
		warn   bool
	}{
		{nil, true},
		{map[string]string{"enable_seqscan": "off"}, false},
		{map[string]string{"plan_cache_mode": "force_custom_plan"}, false},
	} {
		pc, err := pgxpool.ParseConfig(cfg.URL)
		require.NoError(t, err)
		maps.Copy(pc.ConnConfig.RuntimeParams, c.params)
		pool, err := pgxpool.NewWithConfig(context.Background(), pc)
		require.NoError(t, err)
		var buf testlog.Buffer
		p, err := postgres.NewPersistence(postgres.Config{
			Pool: pool, Prefix: cfg.Prefix,
			Logger: slog.New(slog.NewTextHandler(&buf, nil)),
		})
		require.NoError(t, err)
		require.NoError(t, p.Close())
		pool.Close()
		require.Equal(t, c.warn, strings.Contains(buf.String(), fix), "%v: %s", c.params, &buf)
	}

	var buf testlog.Buffer
	cfg.Logger = slog.New(slog.NewTextHandler(&buf, nil))
	newPersistence(t, cfg)
	require.NotContains(t, buf.String(), fix)
}
