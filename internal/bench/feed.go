package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kode4food/timebox"
)

// FeedLag runs the exec-spread load (16 goroutines over 1,000 aggregates),
// after a warm-up (warmUp), while a subscription follows the feed, and
// reports the command rate and the p50 and p99 lag to each event's
// handler call, measured from both sides of its commit: from the event's
// Timestamp (taken when the command raised it, before its append was
// sent: an upper bound of commit → handler), lag-p50-µs and lag-p99-µs,
// and from the moment its Exec returned (after the commit: a lower bound,
// 0 when the handler ran first), ack-lag-p50-µs and ack-lag-p99-µs. Every
// event must reach the handler, once, in order.
func FeedLag(b *testing.B, s *timebox.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	warmUp(b, s)
	start := feedEnd(b, s)
	var mu sync.Mutex
	var lags []time.Duration
	handled := map[string]time.Time{} // by payload tag
	acked := map[string]time.Time{}
	got := make(chan struct{}, 1)
	subDone := make(chan error, 1)
	go func() {
		subDone <- s.Subscribe(ctx, start, func(_ context.Context, ev *timebox.Event) error {
			now := time.Now()
			var p struct{ Tag string }
			if err := json.Unmarshal(ev.Data, &p); err != nil {
				return err
			}
			mu.Lock()
			lags = append(lags, now.Sub(ev.Timestamp))
			handled[p.Tag] = now
			mu.Unlock()
			select {
			case got <- struct{}{}:
			default:
			}
			return nil
		})
	}()
	execSpread(b, s, func(tag string) {
		now := time.Now()
		mu.Lock()
		acked[tag] = now
		mu.Unlock()
	})
	deadline := time.After(time.Minute)
	for {
		mu.Lock()
		n := len(lags)
		mu.Unlock()
		if n >= b.N {
			break
		}
		select {
		case <-got:
		case err := <-subDone:
			b.Fatalf("subscription ended: %v", err)
		case <-deadline:
			b.Fatalf("handler got %d of %d events after a minute", n, b.N)
		}
	}
	cancel()
	<-subDone
	mu.Lock()
	defer mu.Unlock()
	if len(lags) != b.N {
		b.Fatalf("handler got %d events, %d committed", len(lags), b.N)
	}
	if len(handled) != b.N || len(acked) != b.N {
		b.Fatalf("%d events handled, %d commands acknowledged, %d committed",
			len(handled), len(acked), b.N)
	}
	ackLags := make([]time.Duration, 0, b.N)
	for tag, at := range acked {
		ackLags = append(ackLags, max(handled[tag].Sub(at), 0))
	}
	pct := func(lags []time.Duration, p float64) float64 {
		slices.Sort(lags)
		return float64(lags[int(float64(len(lags)-1)*p)].Microseconds())
	}
	b.ReportMetric(pct(lags, 0.50), "lag-p50-µs")
	b.ReportMetric(pct(lags, 0.99), "lag-p99-µs")
	b.ReportMetric(pct(ackLags, 0.50), "ack-lag-p50-µs")
	b.ReportMetric(pct(ackLags, 0.99), "ack-lag-p99-µs")
}

// warmUp runs 16 goroutines of 20 commands each, every goroutine on an
// aggregate of its own, so that what a backend does once per connection
// is done before a measurement starts. A fresh PostgreSQL session
// compiles the append function and plans its statements on its first
// call, with the transaction's ID already taken: while the pool opens its
// first sessions, the feed is held back for every reader (without this,
// the events of FeedLag's first 150 ms or so waited up to 127 ms, and
// they were most of the 1% slowest of 10,000).
func warmUp(b *testing.B, s *timebox.Store) {
	ex := newExecutor(s)
	base := freshID("warm")
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			id := append(base.Clone(), timebox.ID(fmt.Sprint(g)))
			for i := range 20 {
				if _, err := ex.Exec(id, raise(Payload(fmt.Sprint(i)))); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// feedEnd returns the Position of the last event in s's feed.
func feedEnd(b *testing.B, s *timebox.Store) timebox.Position {
	var pos timebox.Position
	for {
		evs, err := s.ReadAll(context.Background(), pos, 10000)
		if err != nil {
			b.Fatal(err)
		}
		if len(evs) == 0 {
			return pos
		}
		pos = evs[len(evs)-1].Position
	}
}

// SeedFeed appends n events (rounded down to a multiple of 100) to s in
// batches of 100, from 8 goroutines each appending to its own 12
// aggregates, and returns the feed's Position before them.
func SeedFeed(b *testing.B, s *timebox.Store, n int) timebox.Position {
	start := feedEnd(b, s)
	base := freshID("feed")
	const batch, aggsPerWorker, workers = 100, 12, 8
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			heads := make([]int64, aggsPerWorker)
			for i := w; i < n/batch; i += workers {
				a := (i / workers) % aggsPerWorker
				id := append(base.Clone(), timebox.ID(fmt.Sprint(w, "-", a)))
				evs := make([]*timebox.Event, batch)
				for j := range evs {
					evs[j] = &timebox.Event{
						Timestamp: time.Now(), Type: "bench",
						Data: Payload(fmt.Sprint(i, "-", j)),
					}
				}
				if err := s.AppendEvents(id, heads[a], evs); err != nil {
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
	return start
}

// FeedCatchUp reads the n events after from (SeedFeed) through
// Store.ReadAll in pages of 1,000, alternating, run by run, with raw, the
// backend's own read of the same stored data, which returns how many
// events it read. It reports both rates (feed-ev/s, raw-ev/s) and
// feed/raw, their ratio.
func FeedCatchUp(
	b *testing.B, s *timebox.Store, from timebox.Position, n int,
	raw func(ctx context.Context) (int, error),
) {
	ctx := context.Background()
	var feedTime, rawTime time.Duration
	b.ResetTimer()
	for range b.N {
		// Each side starts on a collected heap, so that neither pays for
		// collecting the other's garbage (the feed side makes about 450
		// bytes of it an event, the raw side much less).
		runtime.GC()
		t := time.Now()
		got, pos := 0, from
		for got < n {
			evs, err := s.ReadAll(ctx, pos, 1000)
			if err != nil {
				b.Fatal(err)
			}
			if len(evs) == 0 {
				b.Fatalf("feed ended after %d of %d events", got, n)
			}
			got += len(evs)
			pos = evs[len(evs)-1].Position
		}
		feedTime += time.Since(t)
		runtime.GC()
		t = time.Now()
		m, err := raw(ctx)
		rawTime += time.Since(t)
		if err != nil {
			b.Fatal(err)
		}
		if m < n {
			b.Fatalf("raw read %d of %d events", m, n)
		}
	}
	b.StopTimer()
	feed := float64(n*b.N) / feedTime.Seconds()
	rawRate := float64(n*b.N) / rawTime.Seconds()
	Report(b, feed, "feed-ev/s")
	Report(b, rawRate, "raw-ev/s")
	Report(b, feed/rawRate, "feed/raw")
}
