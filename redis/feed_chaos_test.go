package redis

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/testserver"
)

// A durable consumer in two partitions follows four writers while an
// admin client kills the stores' connections (CLIENT KILL by name, all or
// one at a time), and is stopped midway and run again by another
// process: in the end it has handled every event of the feed, every
// acknowledged append's among them, each partition's in Position order
// within a run, and none twice but across the restart. TIMEBOX_CHAOS=1
// makes it run for a minute.
func TestChaosConsumer(t *testing.T) {
	window := 2 * time.Second
	if os.Getenv("TIMEBOX_CHAOS") == "1" {
		window = time.Minute
	}
	addr := testserver.RedisAddr(t)
	name := "tb-" + testserver.Prefix(t)
	stores := chaosStores(t, Config{Addr: addr, ClientName: name}, 2)
	admin := redis.NewClient(&redis.Options{
		Addr: addr, PoolSize: 1, DisableIdentity: true,
		MaintNotificationsConfig: noMaintNotifications(),
	})
	t.Cleanup(func() { _ = admin.Close() })
	ctx := context.Background()

	type handled struct {
		run, part int
		pos       timebox.Position
	}
	var mu sync.Mutex
	var got []handled
	acked := map[string]bool{} // event IDs of acknowledged appends
	consume := func(run int, st *timebox.Store) (context.CancelFunc, chan error) {
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			done <- st.Consume(cctx, "chaos", func(_ context.Context, ev *timebox.Event) error {
				mu.Lock()
				defer mu.Unlock()
				got = append(got, handled{run, timebox.PartitionOf(ev.AggregateID, 2), ev.Position})
				return nil
			}, timebox.WithPartitions(2), timebox.WithLeaseTTL(500*time.Millisecond),
				timebox.WithBatchSize(16))
		}()
		return cancel, done
	}

	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for w := range 4 {
		st := stores[w%2]
		wg.Go(func() {
			for i := 0; wctx.Err() == nil; i++ {
				id := timebox.NewAggregateID("chaos", timebox.ID(fmt.Sprint((w+i)%8)))
				evs, err := st.GetEvents(id, 0)
				if err != nil {
					continue // a killed connection; try again
				}
				ev := event(fmt.Sprint(w, "-", i))
				ev.ID = timebox.NewEventID()
				err = st.AppendEvents(id, int64(len(evs)), []*timebox.Event{ev})
				if err == nil {
					mu.Lock()
					acked[ev.ID] = true
					mu.Unlock()
				}
			}
		})
	}
	var killed atomic.Int64
	wg.Go(func() {
		for round := 0; wctx.Err() == nil; round++ {
			n, err := killClients(wctx, admin, name, round%2 == 0)
			if err != nil && wctx.Err() == nil {
				t.Error(err)
				return
			}
			killed.Add(n)
			time.Sleep(time.Duration(50+round%4*50) * time.Millisecond)
		}
	})

	cancel1, done1 := consume(1, stores[0])
	time.Sleep(window / 2)
	cancel1()
	require.ErrorIs(t, <-done1, context.Canceled)
	cancel2, done2 := consume(2, stores[1])
	time.Sleep(window / 2)
	stop()
	wg.Wait()

	// The truth: the whole feed, read once the faults are over.
	var feed []*timebox.Event
	for pos := (timebox.Position{}); ; {
		evs, err := stores[1].ReadAll(ctx, pos, 1000)
		require.NoError(t, err)
		if len(evs) == 0 {
			break
		}
		feed = append(feed, evs...)
		pos = evs[len(evs)-1].Position
	}
	inFeed := map[string]bool{}
	for _, ev := range feed {
		inFeed[ev.ID] = true
	}
	mu.Lock()
	require.NotEmpty(t, acked)
	for id := range acked {
		require.True(t, inFeed[id], "acknowledged event %s is not in the feed", id)
	}
	mu.Unlock()
	want := map[timebox.Position]bool{}
	for _, ev := range feed {
		want[ev.Position] = true
	}
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		seen := map[timebox.Position]bool{}
		for _, h := range got {
			seen[h.pos] = true
		}
		return len(seen) == len(want)
	}, time.Minute, 10*time.Millisecond, "the consumer did not catch up")
	cancel2()
	if err := <-done2; !errors.Is(err, context.Canceled) {
		require.NoError(t, err)
	}

	require.Positive(t, killed.Load(), "CLIENT KILL killed no connection")
	mu.Lock()
	defer mu.Unlock()
	runs := map[int]int{}
	last := map[[2]int]timebox.Position{} // (run, partition) -> last handled
	count := map[timebox.Position]int{}
	for _, h := range got {
		require.True(t, want[h.pos], "handled %s, not in the feed", h.pos)
		k := [2]int{h.run, h.part}
		if p, ok := last[k]; ok {
			require.Equal(t, 1, h.pos.Compare(p), "run %d partition %d: %s after %s", h.run, h.part, h.pos, p)
		}
		last[k] = h.pos
		count[h.pos]++
		runs[h.run]++
		require.LessOrEqual(t, count[h.pos], 2, "%s handled more than once a run", h.pos)
	}
	require.Positive(t, runs[1], "the first run handled nothing")
	require.Positive(t, runs[2], "the second run handled nothing")
	t.Logf("%d events in the feed, %d acknowledged, %d handled (%d, %d by run), %d connections killed",
		len(feed), len(acked), len(got), runs[1], runs[2], killed.Load())
}
