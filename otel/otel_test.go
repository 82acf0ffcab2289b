package otel_test

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/goleak"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/memory"
	"github.com/kode4food/timebox/otel"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type counter struct{ N int }

var appliers = timebox.Appliers[counter]{
	"added": func(c counter, _ *timebox.Event) counter {
		c.N++
		return c
	},
}

func add(_ counter, ag *timebox.Aggregator[counter]) error {
	return timebox.Raise(ag, "added", 1)
}

type fixture struct {
	spans  *tracetest.SpanRecorder
	reader *sdkmetric.ManualReader
	store  *timebox.Store
	ex     *timebox.Executor[counter]
}

func newFixture(t *testing.T, cfg timebox.Config) *fixture {
	t.Helper()
	return newFixtureOn(t, cfg, func(t *testing.T, cfg timebox.Config) *timebox.Store {
		s, err := memory.NewPersistence().NewStore(cfg)
		require.NoError(t, err)
		return s
	})
}

func newFixtureOn(
	t *testing.T, cfg timebox.Config,
	open func(*testing.T, timebox.Config) *timebox.Store,
) *fixture {
	t.Helper()
	f := &fixture{spans: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader()}
	if cfg.SnapshotRatio == 0 {
		// No background snapshot after a commit: the spans and counts
		// checked are those of the calls the test makes.
		cfg.SnapshotRatio = 1e9
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(f.spans))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(f.reader))
	t.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	hooks, err := otel.New(otel.Config{TracerProvider: tp, MeterProvider: mp})
	require.NoError(t, err)
	cfg.Hooks = hooks
	f.store = open(t, cfg)
	t.Cleanup(func() { _ = f.store.Close() })
	f.ex = timebox.NewExecutor(f.store, func() counter { return counter{} }, appliers)
	return f
}

// sums returns each Int64 counter's total and each histogram's count,
// by metric name, for data points whose attributes include match.
func (f *fixture) sums(t *testing.T, match ...attribute.KeyValue) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, f.reader.Collect(context.Background(), &rm))
	res := map[string]int64{}
	has := func(set attribute.Set) bool {
		for _, kv := range match {
			if v, ok := set.Value(kv.Key); !ok || v != kv.Value {
				return false
			}
		}
		return true
	}
	for _, sm := range rm.ScopeMetrics {
		assert.Equal(t, otel.ScopeName, sm.Scope.Name)
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					if has(p.Attributes) {
						res[m.Name] += p.Value
					}
				}
			case metricdata.Histogram[int64]:
				for _, p := range d.DataPoints {
					if has(p.Attributes) {
						res[m.Name] += int64(p.Count)
						res[m.Name+".sum"] += p.Sum
					}
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					if has(p.Attributes) {
						res[m.Name] += int64(p.Count)
					}
				}
			}
		}
	}
	return res
}

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	res := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		res[kv.Key] = kv.Value
	}
	return res
}

func TestSpansOfACommand(t *testing.T) {
	f := newFixture(t, timebox.Config{})
	id := timebox.NewAggregateID("order", "1")
	_, err := f.ex.Exec(id, add)
	require.NoError(t, err)

	spans := f.spans.Ended()
	require.Len(t, spans, 3)
	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byName[s.Name()] = s
	}
	exec, load, app := byName["timebox.exec"], byName["timebox.load"], byName["timebox.append"]
	require.NotNil(t, exec)
	require.NotNil(t, load)
	require.NotNil(t, app)
	assert.Equal(t, exec.SpanContext().SpanID(), load.Parent().SpanID())
	assert.Equal(t, exec.SpanContext().SpanID(), app.Parent().SpanID())

	a := attrs(exec)
	assert.Equal(t, "memory", a[otel.AttrBackend].AsString())
	assert.Equal(t, "order", a[otel.AttrAggregateType].AsString())
	assert.Equal(t, "ok", a[otel.AttrOutcome].AsString())
	assert.Equal(t, int64(1), a[otel.AttrAttempts].AsInt64())
	assert.Equal(t, int64(1), a[otel.AttrBatchSize].AsInt64())
	assert.Equal(t, int64(1), attrs(app)[otel.AttrAppendEvents].AsInt64())
	assert.Equal(t, int64(1), attrs(app)[otel.AttrAppendSends].AsInt64())
	assert.False(t, attrs(app)[otel.AttrAppendSettled].AsBool())
	assert.False(t, attrs(load)[otel.AttrLoadSnapshot].AsBool())
	assert.Equal(t, codes.Unset, exec.Status().Code)

	ok := otel.AttrOutcome.String("ok")
	order := otel.AttrAggregateType.String("order")
	got := f.sums(t, order, ok)
	assert.Equal(t, int64(1), got["timebox.commands"])
	assert.Equal(t, int64(1), got["timebox.command.duration"])
	assert.Equal(t, int64(1), got["timebox.appends"])
	assert.Equal(t, int64(1), got["timebox.append.duration"])
	assert.Equal(t, int64(1), got["timebox.append.batch.size.sum"])
	assert.Equal(t, int64(1), got["timebox.loads"])
	// A new aggregate: the load read nothing, so no snapshot was offered.
	assert.Equal(t, int64(0), got["timebox.snapshots"])
}

func TestConflictsRetriesAndErrors(t *testing.T) {
	f := newFixture(t, timebox.Config{MaxRetries: 3})
	id := timebox.NewAggregateID("order", "2")
	_, err := f.ex.Exec(id, add)
	require.NoError(t, err)

	head := int64(1)
	_, err = f.ex.Exec(id, func(c counter, ag *timebox.Aggregator[counter]) error {
		err := f.store.AppendEvents(id, head, []*timebox.Event{{Type: "added", Data: []byte("1")}})
		head++
		if err != nil {
			return err
		}
		return add(c, ag)
	})
	require.ErrorIs(t, err, timebox.ErrMaxRetriesExceeded)

	order := otel.AttrAggregateType.String("order")
	got := f.sums(t, order)
	assert.Equal(t, int64(3), got["timebox.conflicts"])
	assert.Equal(t, int64(2), got["timebox.retries"])
	assert.Equal(t, int64(1),
		f.sums(t, order, otel.AttrOutcome.String("conflict"))["timebox.commands"])

	var exec sdktrace.ReadOnlySpan
	for _, s := range f.spans.Ended() {
		if s.Name() == "timebox.exec" {
			exec = s
		}
	}
	require.NotNil(t, exec)
	assert.Equal(t, codes.Error, exec.Status().Code)
	assert.Equal(t, int64(3), attrs(exec)[otel.AttrAttempts].AsInt64())
	conflicts := 0
	for _, ev := range exec.Events() {
		if ev.Name == "timebox.conflict" {
			conflicts++
		}
	}
	assert.Equal(t, 3, conflicts)
}

func TestManyCommandsCountedOnce(t *testing.T) {
	f := newFixture(t, timebox.Config{})
	id := timebox.NewAggregateID("order", "3")
	const n = 64
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			_, err := f.ex.Exec(id, add)
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	got := f.sums(t, otel.AttrOutcome.String("ok"))
	assert.Equal(t, int64(n), got["timebox.commands"])
	assert.Equal(t, int64(n), got["timebox.append.batch.size.sum"])
	evs, err := f.store.GetEvents(id, 0)
	require.NoError(t, err)
	require.Len(t, evs, n)
	for i, ev := range evs {
		assert.Equal(t, int64(i), ev.Sequence, "gapless")
	}
	assert.Equal(t, int64(n), got["timebox.commands"])
}

func TestSnapshotAndLoadSpans(t *testing.T) {
	f := newFixture(t, timebox.Config{})
	id := timebox.NewAggregateID("order", "4")
	require.NoError(t, f.store.AppendEvents(id, 0, []*timebox.Event{{Type: "added", Data: []byte("1")}}))
	require.NoError(t, f.ex.SaveSnapshot(id))
	ex2 := timebox.NewExecutor(f.store, func() counter { return counter{} }, appliers)
	c, err := ex2.Exec(id, add)
	require.NoError(t, err)
	assert.Equal(t, 2, c.N)

	got := f.sums(t)
	assert.Equal(t, int64(1), got["timebox.snapshots"])
	assert.Equal(t, int64(1),
		f.sums(t, otel.AttrLoadSnapshot.Bool(true))["timebox.loads"])
}

// A conditional snapshot the backend did not store is counted with the
// outcome "skipped", not "ok" or "error".
func TestSkippedSnapshot(t *testing.T) {
	f := newFixture(t, timebox.Config{})
	id := timebox.NewAggregateID("order", "none")
	require.NoError(t, f.ex.SaveSnapshot(id), "nothing to snapshot is no error")
	got := f.sums(t, otel.AttrOutcome.String("skipped"))
	assert.Equal(t, int64(1), got["timebox.snapshots"])
	assert.Zero(t, f.sums(t, otel.AttrOutcome.String("ok"))["timebox.snapshots"])
}

// On a server backend the spans and metrics name it.
func TestRedisBackend(t *testing.T) {
	f := newFixtureOn(t, timebox.Config{}, func(t *testing.T, cfg timebox.Config) *timebox.Store {
		return openRedis(t, cfg)
	})
	id := timebox.NewAggregateID("invoice", "1")
	for range 3 {
		_, err := f.ex.Exec(id, add)
		require.NoError(t, err)
	}
	redis := otel.AttrBackend.String("redis")
	got := f.sums(t, redis, otel.AttrAggregateType.String("invoice"), otel.AttrOutcome.String("ok"))
	assert.Equal(t, int64(3), got["timebox.commands"])
	assert.Equal(t, int64(3), got["timebox.append.batch.size.sum"])
	for _, s := range f.spans.Ended() {
		assert.Equal(t, "redis", attrs(s)[otel.AttrBackend].AsString(), s.Name())
	}
}
