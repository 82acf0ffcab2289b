package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/bench"
	"github.com/kode4food/timebox/internal/testserver"
	"github.com/kode4food/timebox/postgres"
)

// BenchmarkWorkloads runs the shared workloads (SPEC §8) on the server of
// TIMEBOX_POSTGRES_URL, each under a Prefix of its own, in a schema
// created for the run, so that figures do not depend on what earlier runs
// left in the tables (the test server runs without autovacuum).
func BenchmarkWorkloads(b *testing.B) {
	base := schemaConfig(b)
	bench.Run(b, func(b *testing.B, cfg timebox.Config) *timebox.Store {
		pc := base
		pc.Prefix = testserver.Prefix(b)
		return openStore(b, pc, cfg)
	})
}

// BenchmarkExecSeqTables runs exec-seq on tables created just before it,
// with no statistics, and again once they are analysed: plans must not
// collapse to sequential scans on new tables.
func BenchmarkExecSeqTables(b *testing.B) {
	pc := schemaConfig(b)
	b.Run("fresh", func(b *testing.B) {
		bench.ExecSeq(b, openStore(b, pc, timebox.Config{}))
	})
	analyze(b, pc.URL)
	b.Run("analysed", func(b *testing.B) {
		bench.ExecSeq(b, openStore(b, pc, timebox.Config{}))
	})
}

// BenchmarkRawInsert is the baseline: one single-row INSERT of a 256-byte
// row per operation, each its own transaction, through pgx with 1 and 16
// connections (the work of pgbench's one-INSERT script).
func BenchmarkRawInsert(b *testing.B) {
	for _, conns := range []int{1, 16} {
		b.Run(fmt.Sprintf("conns=%d", conns), func(b *testing.B) {
			rawInsert(b, conns)
		})
	}
}

// BenchmarkSeqVsRaw alternates, call by call, one Exec raising one event
// with one raw single-row INSERT on another connection (bench.SeqVsRaw),
// with the default SnapshotRatio and with snapshots off
// (bench.NoSnapshots).
func BenchmarkSeqVsRaw(b *testing.B) {
	for _, snaps := range []struct {
		name  string
		ratio float64
	}{{"snapshots=default", 0}, {"snapshots=off", bench.NoSnapshots}} {
		b.Run(snaps.name, func(b *testing.B) {
			pc := schemaConfig(b)
			st := openStore(b, pc, timebox.Config{SnapshotRatio: snaps.ratio})
			bench.SeqVsRaw(b, st, rawInsertOn(b, pc.URL))
		})
	}
}

// BenchmarkSeqSteps prices exec-seq's steps against each other, call by
// call on one connection each, snapshots off: a raw single-row INSERT
// (raw-µs), a SELECT 1 (the round trip, select1-µs), Store.AppendEvents of
// one event (append-µs) and an Exec raising one (exec-µs). Run it with
// log_min_duration_statement=0 in the URL to read the server's own time
// per statement from its log.
func BenchmarkSeqSteps(b *testing.B) {
	pc := schemaConfig(b)
	st := openStore(b, pc, timebox.Config{SnapshotRatio: bench.NoSnapshots})
	raw := rawInsertOn(b, pc.URL)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pc.URL)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = conn.Close(ctx) }()
	ex := timebox.NewExecutor(st, func() int { return 0 }, timebox.Appliers[int]{
		"bench": func(n int, _ *timebox.Event) int { return n + 1 },
	})
	appendID := timebox.NewAggregateID("steps", "append")
	execID := timebox.NewAggregateID("steps", "exec")
	steps := []struct {
		name string
		op   func(i int, data json.RawMessage) error
	}{
		{"raw", func(int, json.RawMessage) error { return raw() }},
		{"select1", func(int, json.RawMessage) error {
			_, err := conn.Exec(ctx, "SELECT 1")
			return err
		}},
		{"append", func(i int, data json.RawMessage) error {
			ev := &timebox.Event{Type: "bench", Data: data, Timestamp: time.Now()}
			return st.AppendEvents(appendID, int64(i), []*timebox.Event{ev})
		}},
		{"exec", func(_ int, data json.RawMessage) error {
			_, err := ex.Exec(execID, func(_ int, ag *timebox.Aggregator[int]) error {
				return timebox.Raise(ag, "bench", data)
			})
			return err
		}},
	}
	took := make([]time.Duration, len(steps))
	b.ResetTimer()
	for i := range b.N {
		data := bench.Payload(strconv.Itoa(i))
		for j, step := range steps {
			t := time.Now()
			if err := step.op(i, data); err != nil {
				b.Fatal(err)
			}
			took[j] += time.Since(t)
		}
	}
	b.StopTimer()
	for j, step := range steps {
		b.ReportMetric(float64(took[j].Microseconds())/float64(b.N), step.name+"-µs")
	}
}

// rawInsertOn creates table raw_insert on a connection of its own to url
// and returns the raw baseline: one single-row INSERT of a 256-byte row,
// its own transaction, per call.
func rawInsertOn(b *testing.B, url string) func() error {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = conn.Close(ctx) })
	_, err = conn.Exec(ctx,
		"CREATE TABLE raw_insert (k bigint NOT NULL, data bytea NOT NULL)")
	if err != nil {
		b.Fatal(err)
	}
	row := []byte(bench.Payload("raw"))
	var k int
	return func() error {
		k++
		_, err := conn.Exec(ctx,
			"INSERT INTO raw_insert (k, data) VALUES ($1, $2)", k, row)
		return err
	}
}

// schemaConfig returns a Config on the test server in a schema created
// for b and dropped, with every row, when b ends (so no Prefix is cleaned
// up), under a Prefix of its own, with the default pool size.
func schemaConfig(b *testing.B) postgres.Config {
	prefix := testserver.Prefix(b)
	return postgres.Config{
		URL:      withSchema(b, testserver.PostgresURL(b), prefix),
		Prefix:   prefix,
		MaxConns: postgres.DefaultMaxConns,
	}
}

func openStore(
	b *testing.B, pc postgres.Config, cfg timebox.Config,
) *timebox.Store {
	p, err := postgres.NewPersistence(pc)
	if err != nil {
		b.Fatal(err)
	}
	s, err := p.NewStore(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

func analyze(b *testing.B, url string) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = conn.Close(ctx) }()
	_, err = conn.Exec(ctx,
		"ANALYZE timebox_events, timebox_snapshot, timebox_index")
	if err != nil {
		b.Fatal(err)
	}
}

func rawInsert(b *testing.B, conns int) {
	url := schemaConfig(b).URL
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns = int32(conns)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	_, err = pool.Exec(ctx,
		"CREATE TABLE raw_insert (k bigint NOT NULL, data bytea NOT NULL)")
	if err != nil {
		b.Fatal(err)
	}
	row := []byte(bench.Payload("raw"))
	bench.Measure(b, conns, 1, "rows/s", func(_, i int) error {
		_, err := pool.Exec(ctx,
			"INSERT INTO raw_insert (k, data) VALUES ($1, $2)", i, row)
		return err
	})
}

// benchTargets are issue 14's targets for PostgreSQL, printed after a run
// that measured their figures (make bench).
var benchTargets = []bench.Target{
	{
		Name: "exec-seq/raw insert (1 connection)",
		Of:   bench.Figure("BenchmarkWorkloads/exec-seq", "cmds/s"),
		Over: bench.Figure("BenchmarkRawInsert/conns=1", "rows/s"),
		Min:  0.9,
	},
	{
		Name: "exec-spread/raw insert (16 connections)",
		Of:   bench.Figure("BenchmarkWorkloads/exec-spread", "cmds/s"),
		Over: bench.Figure("BenchmarkRawInsert/conns=16", "rows/s"),
		Min:  0.5,
	},
	{
		Name: "exec-seq/raw insert interleaved (SeqVsRaw, snapshots off)",
		Of:   bench.Figure("BenchmarkSeqVsRaw/snapshots=off", "exec/raw"),
		Min:  0.9,
	},
	{
		Name: "exec-contended failed",
		Of:   bench.Figure("BenchmarkWorkloads/exec-contended", "failed"),
		Max:  0, MaxZero: true,
	},
	{
		Name: "exec-seq fresh/analysed tables",
		Of:   bench.Figure("BenchmarkExecSeqTables/fresh", "cmds/s"),
		Over: bench.Figure("BenchmarkExecSeqTables/analysed", "cmds/s"),
		Min:  0.75,
	},
}

// feedCatchUpEvents is how many events BenchmarkFeed/catch-up reads, set
// by TIMEBOX_FEED_EVENTS (default 1,000,000).
func feedCatchUpEvents() int {
	if n, err := strconv.Atoi(os.Getenv("TIMEBOX_FEED_EVENTS")); err == nil && n > 0 {
		return n
	}
	return 1_000_000
}

// BenchmarkFeed measures the feed's end-to-end lag under the exec-spread
// load, and the catch-up read of feedCatchUpEvents events from position 0
// through Store.ReadAll against one raw SELECT of the same rows, each in
// a schema created for the run.
func BenchmarkFeed(b *testing.B) {
	base := schemaConfig(b)
	url := base.URL
	b.Run("lag", func(b *testing.B) {
		pc := base
		pc.Prefix = testserver.Prefix(b)
		bench.FeedLag(b, openStore(b, pc, timebox.Config{CacheSize: 1000}))
	})
	pc := base
	// The data is seeded once, on the first call of catch-up, so that
	// running lag alone seeds nothing.
	st := openStore(b, pc, timebox.Config{})
	var from timebox.Position
	seeded := false
	n := feedCatchUpEvents()
	n -= n % 100
	seed := func(b *testing.B) {
		if seeded {
			return
		}
		seeded = true
		from = bench.SeedFeed(b, st, n)
		analyze(b, url)
	}
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	b.Run("catch-up", func(b *testing.B) {
		seed(b)
		bench.FeedCatchUp(b, st, from, n, func(ctx context.Context) (int, error) {
			rows, _ := conn.Query(ctx, `
				SELECT aggregate, seq, sec, nsec, type, data, id, metadata
				FROM timebox_events WHERE ns = $1`, pc.Prefix)
			var key string
			var seq, sec int64
			var nsec int32
			var typ, data, id, md []byte
			k := 0
			_, err := pgx.ForEachRow(rows,
				[]any{&key, &seq, &sec, &nsec, &typ, &data, &id, &md},
				func() error { k++; return nil })
			return k, err
		})
	})
}
