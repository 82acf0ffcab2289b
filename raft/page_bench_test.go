package raft

import (
	"testing"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/bench"
)

// BenchmarkPaging: a page of 100 from a status of 100,000 aggregates
// against the full list, read on the leader of a 3-node cluster.
func BenchmarkPaging(b *testing.B) {
	c := startCluster(b, 3, benchTuning(), false)
	bench.Paging(b, c.store(c.leader(), timebox.Config{Indexer: bench.StatusIndexer}))
}
