// Package bench runs the same workloads on every backend, so their figures
// compare (SPEC §8). Each backend's bench_test.go calls Run with a factory.
//
// Every workload reports its rate (commands, events or queries per second)
// and the p50 and p99 latency of one operation, in microseconds.
package bench

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kode4food/timebox"
)

// PayloadSize is the size of every benchmark event's data.
const PayloadSize = 256

// Factory returns a fresh store with cfg laid over the defaults, cleaned up
// by b.Cleanup.
type Factory func(b *testing.B, cfg timebox.Config) *timebox.Store

type counter struct{ N int64 }

var appliers = timebox.Appliers[counter]{
	"bench": func(c counter, _ *timebox.Event) counter {
		c.N++
		return c
	},
}

var runID atomic.Int64

// NoSnapshots is a SnapshotRatio so large that no benchmark run saves a
// snapshot.
const NoSnapshots = 1e9

// Run runs every workload as a sub-benchmark of b, and exec-seq again with
// SnapshotRatio NoSnapshots ("exec-seq-nosnap").
func Run(b *testing.B, newStore Factory) {
	plain := func(b *testing.B) *timebox.Store {
		return newStore(b, timebox.Config{})
	}
	b.Run("exec-seq", func(b *testing.B) { ExecSeq(b, plain(b)) })
	// exec-seq with background snapshots all but off, to show what the
	// default SnapshotRatio's snapshots cost a busy aggregate.
	b.Run("exec-seq-nosnap", func(b *testing.B) {
		ExecSeq(b, newStore(b, timebox.Config{SnapshotRatio: NoSnapshots}))
	})
	b.Run("exec-spread", func(b *testing.B) {
		ExecSpread(b, newStore(b, timebox.Config{CacheSize: spreadAggregates}))
	})
	b.Run("exec-contended", func(b *testing.B) { ExecContended(b, plain(b)) })
	b.Run("append-batch", func(b *testing.B) { AppendBatch(b, plain(b)) })
	b.Run("load", func(b *testing.B) { Load(b, plain(b)) })
	b.Run("index-query", func(b *testing.B) {
		IndexQuery(b, newStore(b, timebox.Config{Indexer: StatusIndexer}))
	})
}

// ExecSeq runs one command at a time on one aggregate, each raising one
// event.
func ExecSeq(b *testing.B, s *timebox.Store) {
	ex := newExecutor(s)
	id := freshID("seq")
	lat := run(b, 1, func(_, i int) error {
		_, err := ex.Exec(id, raise(Payload(fmt.Sprint(i))))
		return err
	})
	lat.report(b, "cmds/s")
}

// spreadAggregates is how many aggregates ExecSpread spreads over; Run
// sizes the executor's cache to hold them all, as a service with that many
// hot aggregates would.
const spreadAggregates = 1000

// ExecSpread runs 16 goroutines over 1,000 aggregates.
func ExecSpread(b *testing.B, s *timebox.Store) {
	execSpread(b, s, func(string) {})
}

// execSpread is ExecSpread, calling acked with each command's payload tag
// once its Exec has returned successfully.
func execSpread(b *testing.B, s *timebox.Store, acked func(tag string)) {
	ex := newExecutor(s)
	ids := make([]timebox.AggregateID, spreadAggregates)
	base := freshID("spread")
	for i := range ids {
		ids[i] = append(base.Clone(), timebox.ID(fmt.Sprint(i)))
	}
	lat := run(b, 16, func(g, i int) error {
		id := ids[(g*7919+i)%len(ids)]
		tag := fmt.Sprint(g, "-", i)
		if _, err := ex.Exec(id, raise(Payload(tag))); err != nil {
			return err
		}
		acked(tag)
		return nil
	})
	lat.report(b, "cmds/s")
}

// ExecContended runs 8 goroutines on one aggregate, then checks that the
// log holds exactly the acknowledged events.
func ExecContended(b *testing.B, s *timebox.Store) {
	const workers = 8
	ex := newExecutor(s)
	id := freshID("contended")
	acked := make([][]string, workers) // by worker, so no lock is shared
	lat := run(b, workers, func(g, i int) error {
		tag := fmt.Sprint(g, "-", i)
		if _, err := ex.Exec(id, raise(Payload(tag))); err != nil {
			return err
		}
		acked[g] = append(acked[g], tag)
		return nil
	})
	b.StopTimer()
	checkLog(b, s, id, slices.Concat(acked...))
	lat.report(b, "cmds/s")
}

// AppendBatch runs 4 goroutines, each appending batches of 100 events to
// its own aggregate.
func AppendBatch(b *testing.B, s *timebox.Store) {
	const size = 100
	base := freshID("batch")
	next := make([]int64, 4)
	lat := run(b, 4, func(g, i int) error {
		id := append(base.Clone(), timebox.ID(fmt.Sprint(g)))
		evs := make([]*timebox.Event, size)
		for j := range evs {
			evs[j] = &timebox.Event{
				Timestamp: time.Now(),
				Type:      "bench",
				Data:      Payload(fmt.Sprint(g, "-", i, "-", j)),
			}
		}
		if err := s.AppendEvents(id, next[g], evs); err != nil {
			return err
		}
		next[g] += size
		return nil
	})
	lat.perOp = size
	lat.report(b, "events/s")
}

// Load reads all 2,000 events of one aggregate per operation.
func Load(b *testing.B, s *timebox.Store) {
	const size = 2000
	id := freshID("load")
	for seq := int64(0); seq < size; seq += 100 {
		evs := make([]*timebox.Event, 100)
		for j := range evs {
			evs[j] = &timebox.Event{
				Timestamp: time.Now(), Type: "bench",
				Data: Payload(fmt.Sprint(seq + int64(j))),
			}
		}
		if err := s.AppendEvents(id, seq, evs); err != nil {
			b.Fatal(err)
		}
	}
	lat := run(b, 1, func(_, _ int) error {
		evs, err := s.GetEvents(id, 0)
		if err == nil && len(evs) != size {
			err = fmt.Errorf("loaded %d events, want %d", len(evs), size)
		}
		return err
	})
	lat.report(b, "loads/s")
}

// IndexQuery lists the aggregates in one of 100 statuses, spread over
// 10,000 aggregates, so each answer holds 100 entries. s must use
// StatusIndexer.
func IndexQuery(b *testing.B, s *timebox.Store) {
	const aggs, statuses = 10000, 100
	base := freshID("index")
	status := func(i int) string { return fmt.Sprintf("%s-s%d", base, i%statuses) }
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Go(func() {
			for i := g; i < aggs; i += 16 {
				id := append(base.Clone(), timebox.ID(fmt.Sprint(i)))
				evs := []*timebox.Event{{
					Timestamp: time.Now(), Type: timebox.EventType(status(i)),
					Data: json.RawMessage(`{}`),
				}}
				if err := s.AppendEvents(id, 0, evs); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	lat := run(b, 1, func(_, i int) error {
		res, err := s.ListAggregatesByStatus(status(i))
		if err == nil && len(res) != aggs/statuses {
			err = fmt.Errorf("listed %d aggregates, want %d", len(res), aggs/statuses)
		}
		return err
	})
	lat.report(b, "queries/s")
}

// StatusIndexer is the Indexer IndexQuery needs: it sets each aggregate's
// status to the type of the last event in the batch. Backends pass it in
// the Config of the store they make for it; Run does so.
func StatusIndexer(evs []*timebox.Event) []*timebox.Index {
	s := string(evs[len(evs)-1].Type)
	if s == "bench" {
		return nil
	}
	return []*timebox.Index{{Status: &s}}
}

// Payload returns PayloadSize bytes of JSON carrying tag.
func Payload(tag string) json.RawMessage {
	head := `{"tag":"` + tag + `","pad":"`
	pad := max(PayloadSize-len(head)-2, 0)
	return json.RawMessage(head + strings.Repeat("x", pad) + `"}`)
}

func newExecutor(s *timebox.Store) *timebox.Executor[counter] {
	return timebox.NewExecutor(s, func() counter { return counter{} }, appliers)
}

func raise(data json.RawMessage) timebox.Command[counter] {
	return func(_ counter, ag *timebox.Aggregator[counter]) error {
		return timebox.Raise(ag, "bench", data)
	}
}

func freshID(name string) timebox.AggregateID {
	return timebox.NewAggregateID(
		"bench", timebox.ID(fmt.Sprintf("%s-%d-%d", name, time.Now().UnixNano(), runID.Add(1))),
	)
}

func checkLog(b *testing.B, s *timebox.Store, id timebox.AggregateID, acked []string) {
	evs, err := s.GetEvents(id, 0)
	if err != nil {
		b.Fatal(err)
	}
	want := make(map[string]bool, len(acked))
	for _, tag := range acked {
		want[tag] = true
	}
	seen := make(map[string]bool, len(evs))
	for i, ev := range evs {
		var p struct{ Tag string }
		if err := json.Unmarshal(ev.Data, &p); err != nil {
			b.Fatal(err)
		}
		switch {
		case ev.Sequence != int64(i):
			b.Fatalf("gap: event %d has sequence %d", i, ev.Sequence)
		case seen[p.Tag]:
			b.Fatalf("duplicate event %s", p.Tag)
		case !want[p.Tag]:
			b.Fatalf("unacknowledged event %s in the log", p.Tag)
		}
		seen[p.Tag] = true
	}
	if len(seen) != len(want) {
		b.Fatalf("log holds %d events, %d acknowledged", len(seen), len(want))
	}
}

// Measure splits b.N calls of op over workers goroutines, times each, and
// reports the rate in unit (perOp units per call), the p50 and p99 latency
// and the failed calls, which also fail the benchmark. Raw baselines use it
// so that they are measured exactly as the workloads are.
func Measure(b *testing.B, workers, perOp int, unit string, op func(g, i int) error) {
	lat := run(b, workers, op)
	b.StopTimer()
	lat.perOp = perOp
	lat.report(b, unit)
}

// latencies collects per-operation times of one benchmark run.
type latencies struct {
	times  []time.Duration
	failed int64
	total  time.Duration
	perOp  int
}

// run splits b.N operations over workers goroutines and times each.
func run(b *testing.B, workers int, op func(g, i int) error) *latencies {
	res := &latencies{times: make([]time.Duration, b.N), perOp: 1}
	var failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for g := range workers {
		wg.Go(func() {
			for i := g; i < b.N; i += workers {
				t := time.Now()
				if err := op(g, i); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
				res.times[i] = time.Since(t)
			}
		})
	}
	wg.Wait()
	res.total = time.Since(start)
	res.failed = failed.Load()
	if err, ok := firstErr.Load().(error); ok {
		b.Errorf("%d of %d operations failed, first: %v", res.failed, b.N, err)
	}
	return res
}

func (l *latencies) report(b *testing.B, unit string) {
	slices.Sort(l.times)
	pct := func(p float64) float64 {
		return float64(l.times[int(float64(len(l.times)-1)*p)].Microseconds())
	}
	Report(b, float64(len(l.times)*l.perOp)/l.total.Seconds(), unit)
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
	Report(b, float64(l.failed), "failed")
}

// SeqVsRaw alternates, call by call, one Exec on s raising one event (as
// exec-seq does) with one call of raw, the backend's baseline, so both see
// the same machine load. It reports their mean latencies (exec-µs, raw-µs)
// and exec/raw, the ratio of their rates (raw time / exec time). Work an
// Exec leaves running in the background (a busy aggregate's snapshot)
// lands in the raw call's time, so compare with snapshots off
// (NoSnapshots); exec-seq against exec-seq-nosnap shows what snapshots cost.
func SeqVsRaw(b *testing.B, s *timebox.Store, raw func() error) {
	ex := newExecutor(s)
	id := freshID("seqvsraw")
	var execTime, rawTime time.Duration
	b.ResetTimer()
	for i := range b.N {
		data := Payload(fmt.Sprint(i))
		t := time.Now()
		_, err := ex.Exec(id, raise(data))
		execTime += time.Since(t)
		if err != nil {
			b.Fatal(err)
		}
		t = time.Now()
		err = raw()
		rawTime += time.Since(t)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(execTime.Microseconds())/float64(b.N), "exec-µs")
	b.ReportMetric(float64(rawTime.Microseconds())/float64(b.N), "raw-µs")
	Report(b, float64(rawTime)/float64(execTime), "exec/raw")
}
