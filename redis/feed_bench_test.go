package redis

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/bench"
)

// BenchmarkFeed measures the feed on the server from TIMEBOX_REDIS_ADDR:
// lag, the end-to-end lag under the exec-spread load (bench.FeedLag), and
// catch-up, reading TIMEBOX_FEED_EVENTS events (default 1,000,000, seeded
// by seedFeed on a private redis-server) through Store.ReadAll,
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
		from := seedFeed(b, st, p, n)
		bench.FeedCatchUp(b, st, from, n, func(ctx context.Context) (int, error) {
			return rawFeed(ctx, p, from.Commit, n)
		})
	})
}

// rawFeed reads the feed entries after commit with XRANGE, 10 entries
// (seedFeed's 100-event batches: 1,000 events) a page, until it has
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

// seedFeed appends n events to st in batches of 100 over 96 aggregates
// from 8 goroutines, each its own aggregates, and returns the Position
// before them. (bench.SeedFeed, as of b6d5247, shares an aggregate
// between goroutines that each count its head on their own, so it fails
// with a version conflict beyond 10,000 events.)
func seedFeed(b *testing.B, st *timebox.Store, p *Persistence, n int) timebox.Position {
	const batch, aggs, workers = 100, 96, 8
	last, err := p.client.XRevRangeN(context.Background(), p.keys.feed, "+", "-", 1).Result()
	if err != nil {
		b.Fatal(err)
	}
	var from timebox.Position
	if len(last) > 0 {
		c, err := parseFeedID(last[0].ID)
		if err != nil {
			b.Fatal(err)
		}
		from = timebox.Position{Commit: c, Offset: batch}
	}
	base := timebox.NewAggregateID("seed", timebox.ID(strconv.Itoa(b.N)))
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			heads := map[int]int64{}
			for i := w; i < n/batch; i += workers {
				a := i % aggs // i ≡ a (mod 8): only worker w has a
				id := append(base.Clone(), timebox.ID(strconv.Itoa(a)))
				evs := make([]*timebox.Event, batch)
				for j := range evs {
					evs[j] = &timebox.Event{
						Timestamp: time.Now(), Type: "bench",
						Data: bench.Payload(fmt.Sprint(i, "-", j)),
					}
				}
				if err := st.AppendEvents(id, heads[a], evs); err != nil {
					errs <- err
					return
				}
				heads[a] += batch
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	return from
}
