package redis

import (
	"testing"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/bench"
)

// BenchmarkPaging: a page of 100 from a status of 100,000 aggregates
// against the full list, on the server from TIMEBOX_REDIS_ADDR.
func BenchmarkPaging(b *testing.B) {
	bench.Paging(b, newStore(b, Config{}, timebox.Config{Indexer: bench.StatusIndexer}))
}
