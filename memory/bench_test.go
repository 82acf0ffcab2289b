package memory_test

import (
	"testing"
	"time"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/bench"
	"github.com/kode4food/timebox/memory"
)

func BenchmarkWorkloads(b *testing.B) {
	bench.Run(b, newBenchStore)
}

func newBenchStore(b *testing.B, cfg timebox.Config) *timebox.Store {
	s, err := memory.NewPersistence().NewStore(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

// benchTargets: memory has no server to compare with, and the original
// project's code is not measured here, so only the failure count has a
// target.
var benchTargets = []bench.Target{{
	Name: "exec-contended failed",
	Of:   bench.Figure("BenchmarkWorkloads/exec-contended", "failed"),
	Max:  0, MaxZero: true,
}}

// BenchmarkFeed measures the feed's end-to-end lag under the exec-spread
// load. Memory has no raw read to compare a catch-up with.
func BenchmarkFeed(b *testing.B) {
	b.Run("lag", func(b *testing.B) {
		bench.FeedLag(b, newBenchStore(b, timebox.Config{CacheSize: 1000}))
	})
}

// BenchmarkAppendOwn is the Store's and the backend's own cost of a
// 100-event AppendEvents, one writer, with the caller's events made once
// (append-batch makes new ones for every call, as a service would): what
// an event costs to validate, stamp, copy and store, per event.
func BenchmarkAppendOwn(b *testing.B) {
	const size = 100
	s := newBenchStore(b, timebox.Config{})
	evs := make([]*timebox.Event, size)
	for i := range evs {
		evs[i] = &timebox.Event{
			Timestamp: time.Now(), Type: "bench", Data: bench.Payload("own"),
		}
	}
	id := timebox.NewAggregateID("own")
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := s.AppendEvents(id, int64(i*size), evs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/event")
}
