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
// an event costs to validate, stamp, copy and store, per event. "kept"
// keeps every event, as a store does, so the heap only grows and each
// event's copy lands in memory never touched before; "dropped" starts a
// new store every 1,000 appends, so the same work reuses freed memory.
func BenchmarkAppendOwn(b *testing.B) {
	const size = 100
	evs := make([]*timebox.Event, size)
	for i := range evs {
		evs[i] = &timebox.Event{
			Timestamp: time.Now(), Type: "bench", Data: bench.Payload("own"),
		}
	}
	id := timebox.NewAggregateID("own")
	for _, every := range []int{0, 1000} {
		name := "kept"
		if every > 0 {
			name = "dropped"
		}
		b.Run(name, func(b *testing.B) {
			s, _ := memory.NewPersistence().NewStore(timebox.Config{})
			defer func() { _ = s.Close() }()
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				at := i
				if every > 0 {
					if at %= every; at == 0 {
						_ = s.Close()
						s, _ = memory.NewPersistence().NewStore(timebox.Config{})
					}
				}
				if err := s.AppendEvents(id, int64(at*size), evs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/event")
		})
	}
}
