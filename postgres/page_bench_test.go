package postgres_test

import (
	"testing"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/bench"
)

// BenchmarkPaging: a page of 100 from a status of 100,000 aggregates
// against the full list, in a schema created for the run.
func BenchmarkPaging(b *testing.B) {
	bench.Paging(b, openStore(b, schemaConfig(b), timebox.Config{Indexer: bench.StatusIndexer}))
}
