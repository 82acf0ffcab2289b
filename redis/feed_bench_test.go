package redis

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/bench"
)

// BenchmarkFeedLag runs exec-spread on the server from TIMEBOX_REDIS_ADDR
// with a Subscribe following the feed, and reports the lag from each
// event's Timestamp (stamped by the Executor before its append is sent)
// to its handler call: an upper bound of commit → handler, p50 and p99 in
// microseconds.
func BenchmarkFeedLag(b *testing.B) {
	st := newStore(b, Config{}, timebox.Config{CacheSize: 1000})
	from, err := st.ReadAll(context.Background(), timebox.Position{}, 1)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var lags []time.Duration
	done := make(chan error, 1)
	start := timebox.Position{}
	if len(from) > 0 {
		start = from[0].Position
	}
	go func() {
		done <- st.Subscribe(ctx, start, func(_ context.Context, ev *timebox.Event) error {
			lag := time.Since(ev.Timestamp)
			mu.Lock()
			lags = append(lags, lag)
			mu.Unlock()
			return nil
		})
	}()
	bench.ExecSpread(b, st)
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(lags)
	}
	for deadline := time.Now().Add(time.Minute); count() < b.N; {
		if time.Now().After(deadline) {
			b.Fatalf("subscriber saw %d of %d events", count(), b.N)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(lags)
	pct := func(p float64) float64 {
		return float64(lags[int(float64(len(lags)-1)*p)].Microseconds())
	}
	bench.Report(b, pct(0.5), "lag-p50-µs")
	bench.Report(b, pct(0.99), "lag-p99-µs")
}

// BenchmarkFeedCatchUp seeds a private redis-server with
// TIMEBOX_FEED_EVENTS events (default 1,000,000) in appends of 10 over
// 1,024 aggregates, then reads them all from position 0 three times over,
// alternating Store.ReadAll pages of 1,000 events (read-all) with XRANGE
// pages of the same 100 feed entries through go-redis, not decoded
// (raw-xrange). Both report events/s.
func BenchmarkFeedCatchUp(b *testing.B) {
	n := 1_000_000
	if s := os.Getenv("TIMEBOX_FEED_EVENTS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	const batch, aggs, page = 10, 1024, 1000 // aggs: a multiple of the 16 writers
	p := newPersistence(b, Config{Addr: startServer(b, "")})
	st, err := p.NewStore(timebox.Config{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Go(func() {
			for i := g; i < n/batch; i += 16 {
				id := timebox.NewAggregateID("catchup", timebox.ID(strconv.Itoa(i%aggs)))
				evs := make([]*timebox.Event, batch)
				for j := range evs {
					evs[j] = &timebox.Event{
						Timestamp: time.Now(), Type: "bench",
						Data: bench.Payload(fmt.Sprint(i, "-", j)),
					}
				}
				if err := st.AppendEvents(id, int64(i/aggs*batch), evs); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	readAll := func() int {
		total, pos := 0, timebox.Position{}
		for {
			evs, err := st.ReadAll(ctx, pos, page)
			if err != nil {
				b.Fatal(err)
			}
			if len(evs) == 0 {
				return total
			}
			total += len(evs)
			pos = evs[len(evs)-1].Position
		}
	}
	rawXRange := func() int {
		total, from := 0, "-"
		for {
			msgs, err := p.client.XRangeN(ctx, p.keys.feed, from, "+", page/batch).Result()
			if err != nil {
				b.Fatal(err)
			}
			if len(msgs) == 0 {
				return total
			}
			total += len(msgs) * batch
			from = "(" + msgs[len(msgs)-1].ID
		}
	}
	for range 3 {
		for _, c := range []struct {
			name string
			read func() int
		}{{"read-all", readAll}, {"raw-xrange", rawXRange}} {
			b.Run(c.name, func(b *testing.B) {
				got := 0
				for b.Loop() {
					got += c.read()
				}
				if got != b.N*n {
					b.Fatalf("read %d events, want %d", got, b.N*n)
				}
				bench.Report(b, float64(got)/b.Elapsed().Seconds(), "events/s")
			})
		}
	}
}
