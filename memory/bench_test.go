package memory_test

import (
	"testing"

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
