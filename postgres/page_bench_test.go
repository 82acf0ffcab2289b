package postgres_test

import (
	"testing"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/bench"
	"github.com/kode4food/timebox/internal/testserver"
	"github.com/kode4food/timebox/postgres"
)

// BenchmarkPaging: a page of 100 from a status of 100,000 aggregates
// against the full list, in a schema created for the run.
func BenchmarkPaging(b *testing.B) {
	pc := testConfig(b)
	pc.URL = withSchema(b, testserver.PostgresURL(b), testserver.Prefix(b))
	pc.MaxConns = postgres.DefaultMaxConns
	bench.Paging(b, openStore(b, pc, timebox.Config{Indexer: bench.StatusIndexer}))
}
