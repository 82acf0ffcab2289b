package redis

import (
	"context"
	"os"
	"strconv"
	"testing"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/bench"
)

// BenchmarkFeed measures the feed on the server from TIMEBOX_REDIS_ADDR:
// lag, the end-to-end lag under the exec-spread load (bench.FeedLag), and
// catch-up, reading TIMEBOX_FEED_EVENTS events (default 1,000,000, seeded
// by bench.SeedFeed on a private redis-server) through Store.ReadAll,
// alternating with raw XRANGE pages of the same feed entries through
// go-redis, not decoded (bench.FeedCatchUp).
func BenchmarkFeed(b *testing.B) {
	b.Run("lag", func(b *testing.B) {
		bench.FeedLag(b, newStore(b, Config{}, timebox.Config{CacheSize: 1000}))
	})
	b.Run("catch-up", func(b *testing.B) {
		n := 1_000_000
		if s := os.Getenv("TIMEBOX_FEED_EVENTS"); s != "" {
			var err error
			if n, err = strconv.Atoi(s); err != nil {
				b.Fatal(err)
			}
		}
		p := newPersistence(b, Config{Addr: startServer(b, "")})
		st, err := p.NewStore(timebox.Config{})
		if err != nil {
			b.Fatal(err)
		}
		from := bench.SeedFeed(b, st, n)
		bench.FeedCatchUp(b, st, from, n, func(ctx context.Context) (int, error) {
			return rawFeed(ctx, p, from.Commit, n)
		})
	})
}

// rawFeed reads the feed entries after commit with XRANGE, 10 entries
// (bench.SeedFeed's 100-event batches: 1,000 events) a page, until it has
// n events, counting 100 events an entry without decoding them.
func rawFeed(ctx context.Context, p *Persistence, commit uint64, n int) (int, error) {
	const perEntry, page = 100, 10
	got, from := 0, "("+feedID(commit)
	for got < n {
		msgs, err := p.client.XRangeN(ctx, p.keys.feed, from, "+", page).Result()
		if err != nil || len(msgs) == 0 {
			return got, err
		}
		got += len(msgs) * perEntry
		from = "(" + msgs[len(msgs)-1].ID
	}
	return got, nil
}
