package memory_test

import (
	"testing"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/bench"
	"github.com/kode4food/timebox/memory"
)

// BenchmarkPaging: a page of 100 from a status of 100,000 aggregates
// against the full list.
func BenchmarkPaging(b *testing.B) {
	s, err := memory.NewPersistence().NewStore(timebox.Config{Indexer: bench.StatusIndexer})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	bench.Paging(b, s)
}
