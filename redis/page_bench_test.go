package redis

import (
	"context"
	"testing"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/bench"
)

// BenchmarkPaging: a page of 100 from a status of 100,000 aggregates
// against the full list, on the server from TIMEBOX_REDIS_ADDR.
func BenchmarkPaging(b *testing.B) {
	p := newPersistence(b, Config{})
	s, err := p.NewStore(timebox.Config{Indexer: bench.StatusIndexer})
	if err != nil {
		b.Fatal(err)
	}
	// Runs before the helper's key-by-key cleanup: the 200,000 keys go
	// in batches of 1,000.
	b.Cleanup(func() { unlinkPrefix(b, p) })
	bench.Paging(b, s)
}

func unlinkPrefix(b *testing.B, p *Persistence) {
	ctx := context.Background()
	var cursor uint64
	for {
		keys, next, err := p.client.Scan(ctx, cursor, p.keys.base+"*", 1000).Result()
		if err != nil {
			b.Error(err)
			return
		}
		if len(keys) > 0 {
			if err := p.client.Unlink(ctx, keys...).Err(); err != nil {
				b.Error(err)
				return
			}
		}
		if cursor = next; cursor == 0 {
			return
		}
	}
}
