package redis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
)

// TestFeed runs the feed cases on the shared server; TestCluster runs them
// on a sharded store of its three-master cluster.
func TestFeed(t *testing.T) {
	testFeed(t, Config{})
}

func testFeed(t *testing.T, cfg Config) {
	open := func(t *testing.T) (*timebox.Store, *Persistence) {
		p := newPersistence(t, cfg)
		st, err := p.NewStore(timebox.Config{})
		require.NoError(t, err)
		return st, p
	}
	t.Run("Positions", func(t *testing.T) { testFeedPositions(t, open) })
	t.Run("TrimAndArchive", func(t *testing.T) { testFeedKeeps(t, open) })
	t.Run("Wait", func(t *testing.T) { testFeedWait(t, open) })
	t.Run("Consumers", func(t *testing.T) { testFeedConsumers(t, open) })
	t.Run("ConsumerWithoutEpoch", func(t *testing.T) { testConsumerWithoutEpoch(t, open) })
	t.Run("Race", func(t *testing.T) { testFeedRace(t, open) })
	t.Run("ReadAhead", func(t *testing.T) { testFeedReadAhead(t, open) })
	t.Run("Consume", func(t *testing.T) { testFeedConsume(t, cfg) })
}

type openFunc func(t *testing.T) (*timebox.Store, *Persistence)

func appendN(t *testing.T, st *timebox.Store, id timebox.AggregateID, at int64, n int) {
	t.Helper()
	evs := make([]*timebox.Event, n)
	for i := range evs {
		evs[i] = event(fmt.Sprint(at + int64(i)))
	}
	require.NoError(t, st.AppendEvents(id, at, evs))
}

// One feed entry per append, Commit counting appends from 1, Offset the
// event's place in its batch; pages resume inside a batch.
func testFeedPositions(t *testing.T, open openFunc) {
	st, _ := open(t)
	a, b := timebox.NewAggregateID("a"), timebox.NewAggregateID("b", "1")
	appendN(t, st, a, 0, 3)
	appendN(t, st, b, 0, 2)
	appendN(t, st, a, 3, 1)
	require.NoError(t, st.AppendEvents(a, 4, nil)) // a check of the head only

	evs, err := st.ReadAll(context.Background(), timebox.Position{}, 100)
	require.NoError(t, err)
	type got struct {
		id  string
		seq int64
		pos timebox.Position
	}
	var all []got
	for _, ev := range evs {
		all = append(all, got{ev.AggregateID.String(), ev.Sequence, ev.Position})
	}
	require.Equal(t, []got{
		{`["a"]`, 0, timebox.Position{Commit: 1}},
		{`["a"]`, 1, timebox.Position{Commit: 1, Offset: 1}},
		{`["a"]`, 2, timebox.Position{Commit: 1, Offset: 2}},
		{`["b","1"]`, 0, timebox.Position{Commit: 2}},
		{`["b","1"]`, 1, timebox.Position{Commit: 2, Offset: 1}},
		{`["a"]`, 3, timebox.Position{Commit: 3}},
	}, all)
	require.JSONEq(t, `"2"`, string(evs[2].Data))

	for _, limit := range []int{1, 2, 4} {
		var paged []*timebox.Event
		pos := timebox.Position{}
		for {
			page, err := st.ReadAll(context.Background(), pos, limit)
			require.NoError(t, err)
			require.LessOrEqual(t, len(page), limit)
			if len(page) == 0 {
				break
			}
			paged = append(paged, page...)
			pos = page[len(page)-1].Position
		}
		require.Len(t, paged, len(evs), "limit %d", limit)
		for i := range paged {
			require.Equal(t, evs[i].Position, paged[i].Position)
		}
	}
	// After the last event of a batch, the next page starts at the next
	// batch even with limit 1.
	page, err := st.ReadAll(context.Background(), timebox.Position{Commit: 1, Offset: 2}, 1)
	require.NoError(t, err)
	require.Len(t, page, 1)
	require.Equal(t, timebox.Position{Commit: 2}, page[0].Position)
}

// Trimming and archiving leave the feed alone.
func testFeedKeeps(t *testing.T, open openFunc) {
	st, p := open(t)
	ctx := context.Background()
	a, b := timebox.NewAggregateID("trim"), timebox.NewAggregateID("arch")
	appendN(t, st, a, 0, 3)
	appendN(t, st, b, 0, 2)
	require.NoError(t, p.SaveSnapshot(ctx, timebox.SnapshotRequest{
		ID: a, Data: []byte(`{}`), Sequence: 3, Trim: true,
	}))
	require.NoError(t, st.Archive(b))
	live, err := st.GetEvents(a, 0)
	require.NoError(t, err)
	require.Empty(t, live)
	evs, err := st.ReadAll(ctx, timebox.Position{}, 100)
	require.NoError(t, err)
	require.Len(t, evs, 5)
	n, err := p.client.XLen(ctx, p.keys.feed).Result()
	require.NoError(t, err)
	require.EqualValues(t, 2, n)
}

// A waiting read returns the first append after it, returns nothing when
// Wait passes, and ctx's error when ctx ends.
func testFeedWait(t *testing.T, open openFunc) {
	st, p := open(t)
	ctx := context.Background()
	id := timebox.NewAggregateID("w")

	evs, err := p.ReadFeed(ctx, timebox.FeedRequest{Limit: 10, Wait: 20 * time.Millisecond})
	require.NoError(t, err)
	require.Empty(t, evs)

	got := make(chan []*timebox.Event, 1)
	go func() {
		evs, err := p.ReadFeed(ctx, timebox.FeedRequest{Limit: 10, Wait: time.Minute})
		if err != nil {
			t.Error(err)
		}
		got <- evs
	}()
	appendN(t, st, id, 0, 2)
	select {
	case evs := <-got:
		require.Len(t, evs, 2)
		require.Equal(t, timebox.Position{Commit: 1, Offset: 1}, evs[1].Position)
	case <-time.After(time.Minute):
		t.Fatal("waiting read did not wake")
	}

	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := p.ReadFeed(cctx, timebox.FeedRequest{
			After: timebox.Position{Commit: 1, Offset: 1}, Limit: 10, Wait: time.Hour,
		})
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(time.Minute):
		t.Fatal("cancelled read did not return")
	}
}

// Every ConsumerBackend operation on the server, and the keys in the
// store's slot.
func testFeedConsumers(t *testing.T, open openFunc) {
	_, p := open(t)
	ctx := context.Background()
	l := timebox.Lease{Consumer: "c:{x}", Partition: 1, Partitions: 2, Owner: "A", TTL: time.Minute}
	lb := l
	lb.Owner = "B"

	pos, err := p.ClaimPartition(ctx, l)
	require.NoError(t, err)
	require.True(t, pos.Checkpoint.IsZero())
	_, err = p.ClaimPartition(ctx, lb)
	require.ErrorIs(t, err, timebox.ErrLeaseHeld)
	bad := l
	bad.Partitions = 3
	_, err = p.ClaimPartition(ctx, bad)
	require.ErrorIs(t, err, timebox.ErrPartitionMismatch)

	at := timebox.Position{Commit: 7, Offset: 2}
	require.NoError(t, p.CommitPartition(ctx, l, at))
	require.ErrorIs(t, p.CommitPartition(ctx, lb, at), timebox.ErrLeaseLost)
	pos, err = p.ClaimPartition(ctx, l) // renewal
	require.NoError(t, err)
	require.Equal(t, at, pos.Checkpoint)

	list, err := p.ListConsumers(ctx)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, "c:{x}", list[0].Name)
	require.Len(t, list[0].Partitions, 2)
	require.Equal(t, timebox.PartitionInfo{Partition: 0}, list[0].Partitions[0])
	p1 := list[0].Partitions[1]
	require.Equal(t, at, p1.Checkpoint)
	require.Equal(t, "A", p1.Owner)
	require.WithinDuration(t, time.Now().Add(time.Minute), p1.Expires, 30*time.Second)

	require.NoError(t, p.ReleasePartition(ctx, lb)) // not B's: no-op
	_, err = p.ClaimPartition(ctx, lb)
	require.ErrorIs(t, err, timebox.ErrLeaseHeld)
	require.NoError(t, p.ReleasePartition(ctx, l))
	pos, err = p.ClaimPartition(ctx, lb)
	require.NoError(t, err)
	require.Equal(t, at, pos.Checkpoint)
	require.ErrorIs(t, p.CommitPartition(ctx, l, at), timebox.ErrLeaseLost)

	// An expired lease may be claimed by another owner.
	short := l
	short.Partition, short.TTL = 0, time.Millisecond
	_, err = p.ClaimPartition(ctx, short)
	require.NoError(t, err)
	other := short
	other.Owner = "B"
	require.Eventually(t, func() bool {
		_, err := p.ClaimPartition(ctx, other)
		return err == nil
	}, time.Minute, 5*time.Millisecond)

	reset := timebox.Position{Commit: 3}
	require.NoError(t, p.ResetConsumer(ctx, l.Consumer, reset))
	require.ErrorIs(t, p.CommitPartition(ctx, lb, at), timebox.ErrLeaseLost)
	list, err = p.ListConsumers(ctx)
	require.NoError(t, err)
	for _, pi := range list[0].Partitions {
		require.Equal(t, reset, pi.Checkpoint)
		require.Empty(t, pi.Owner)
	}
	require.ErrorIs(t, p.ResetConsumer(ctx, "nobody", reset), timebox.ErrConsumerNotFound)

	require.NoError(t, p.DeleteConsumer(ctx, l.Consumer))
	require.ErrorIs(t, p.DeleteConsumer(ctx, l.Consumer), timebox.ErrConsumerNotFound)
	list, err = p.ListConsumers(ctx)
	require.NoError(t, err)
	require.Empty(t, list)
	require.ErrorIs(t, p.CommitPartition(ctx, lb, at), timebox.ErrLeaseLost)
	pos, err = p.ClaimPartition(ctx, bad) // a new consumer, any count
	require.NoError(t, err)
	require.True(t, pos.Checkpoint.IsZero())

	if p.config.Shard != "" {
		slot := func(key string) int64 {
			s, err := p.client.ClusterKeySlot(ctx, key).Result()
			require.NoError(t, err)
			return s
		}
		want := slot(p.keys.aggs)
		for _, k := range []string{
			p.keys.feed, p.keys.cons, p.keys.epochs, p.keys.consumer(encodeName(l.Consumer)),
		} {
			require.Equal(t, want, slot(k), k)
		}
	}
}

// A consumer stored before epochs (no 'e' field) claims at epoch 0, which
// the counter never gives, and a reset gives it a new one.
func testConsumerWithoutEpoch(t *testing.T, open openFunc) {
	_, p := open(t)
	ctx := context.Background()
	ename := encodeName("old")
	require.NoError(t, p.client.HSet(ctx, p.keys.consumer(ename), "n", 1, "c0", "5.1").Err())
	require.NoError(t, p.client.ZAdd(ctx, p.keys.cons, redis.Z{Member: ename}).Err())

	l := timebox.Lease{Consumer: "old", Partitions: 1, Owner: "A", TTL: time.Minute}
	c, err := p.ClaimPartition(ctx, l)
	require.NoError(t, err)
	require.Equal(t, timebox.Claim{Checkpoint: timebox.Position{Commit: 5, Offset: 1}}, c)
	require.NoError(t, p.ResetConsumer(ctx, "old", c.Checkpoint))
	c, err = p.ClaimPartition(ctx, l)
	require.NoError(t, err)
	require.Equal(t, timebox.Position{Commit: 5, Offset: 1}, c.Checkpoint)
	require.NotZero(t, c.Epoch)
}

// Writers race on one hot aggregate and on many while a subscriber
// follows the feed: it sees every acknowledged event once, positions
// strictly increasing, and each aggregate's sequences gapless and in
// order.
func testFeedRace(t *testing.T, open openFunc) {
	st, _ := open(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const writers, appends = 8, 25

	var mu sync.Mutex
	acked := map[string]int64{} // aggregate -> events acknowledged
	var seen []*timebox.Event
	subDone := make(chan error, 1)
	go func() {
		subDone <- st.Subscribe(ctx, timebox.Position{}, func(_ context.Context, ev *timebox.Event) error {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, ev)
			return nil
		})
	}()

	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			own := timebox.NewAggregateID("own", timebox.ID(fmt.Sprint(w)))
			hot := timebox.NewAggregateID("hot")
			for i := range appends {
				id := own
				if i%2 == 0 {
					id = hot
				}
				for {
					evs, err := st.GetEvents(id, 0)
					if err != nil {
						t.Error(err)
						return
					}
					at := int64(len(evs))
					n := 1 + i%3
					batch := make([]*timebox.Event, n)
					for j := range batch {
						batch[j] = event(fmt.Sprint(w, i, j))
					}
					err = st.AppendEvents(id, at, batch)
					if errors.Is(err, timebox.ErrVersionConflict) {
						continue
					}
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					acked[id.String()] += int64(n)
					mu.Unlock()
					break
				}
			}
		})
	}
	wg.Wait()
	total := int64(0)
	for _, n := range acked {
		total += n
	}
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return int64(len(seen)) >= total
	}, time.Minute, 10*time.Millisecond)
	cancel()
	require.ErrorIs(t, <-subDone, context.Canceled)

	mu.Lock()
	defer mu.Unlock()
	require.EqualValues(t, total, len(seen))
	next := map[string]int64{}
	for i, ev := range seen {
		if i > 0 {
			require.Equal(t, 1, ev.Position.Compare(seen[i-1].Position), "at %d", i)
		}
		k := ev.AggregateID.String()
		require.Equal(t, next[k], ev.Sequence, "aggregate %s", k)
		next[k]++
	}
	require.Equal(t, acked, next)
}

// A durable consumer resumes from its checkpoint, and when the process
// holding its partitions dies (its store closed, leases left behind),
// another takes them over once the leases expire.
func testFeedConsume(t *testing.T, cfg Config) {
	rc := testConfig(t, cfg)
	stores := make([]*timebox.Store, 2)
	for i := range stores {
		p, err := NewPersistence(rc)
		require.NoError(t, err)
		stores[i], err = p.NewStore(timebox.Config{})
		require.NoError(t, err)
		t.Cleanup(func() { _ = stores[i].Close() })
	}
	ctx := context.Background()
	for i := range 5 {
		appendN(t, stores[0], timebox.NewAggregateID("c", timebox.ID(fmt.Sprint(i))), 0, 2)
	}

	var mu sync.Mutex
	seen := map[string][]timebox.Position{} // owner -> positions handled
	count := func(owner string) int {
		mu.Lock()
		defer mu.Unlock()
		return len(seen[owner])
	}
	run := func(st *timebox.Store, owner string) (context.CancelFunc, chan error) {
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			done <- st.Consume(cctx, "totals", func(_ context.Context, ev *timebox.Event) error {
				mu.Lock()
				defer mu.Unlock()
				seen[owner] = append(seen[owner], ev.Position)
				return nil
			}, timebox.WithPartitions(2), timebox.WithLeaseTTL(300*time.Millisecond),
				timebox.WithOwner(owner), timebox.WithBatchSize(3))
		}()
		return cancel, done
	}

	cancel, done := run(stores[0], "first")
	require.Eventually(t, func() bool { return count("first") == 10 }, time.Minute, 5*time.Millisecond)
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	infos, err := stores[0].Consumers(ctx)
	require.NoError(t, err)
	require.Len(t, infos, 1)
	// A partition's checkpoint may stop short of the events of the other
	// partition it had not yet read past, never past the last event.
	for _, pi := range infos[0].Partitions {
		require.False(t, pi.Checkpoint.IsZero())
		require.LessOrEqual(t, pi.Checkpoint.Compare(timebox.Position{Commit: 5, Offset: 1}), 0)
		require.Empty(t, pi.Owner)
	}

	// Resumes after its checkpoint.
	appendN(t, stores[0], timebox.NewAggregateID("c", "0"), 2, 1)
	cancel, done = run(stores[0], "second")
	require.Eventually(t, func() bool { return count("second") == 1 }, time.Minute, 5*time.Millisecond)
	require.Equal(t, []timebox.Position{{Commit: 6}}, seen["second"])

	// Dies holding the leases: another process takes over.
	standby, standbyDone := run(stores[1], "standby")
	defer standby()
	require.NoError(t, stores[0].Close())
	require.ErrorIs(t, <-done, timebox.ErrClosed)
	cancel()
	appendN(t, stores[1], timebox.NewAggregateID("c", "1"), 2, 1)
	appendN(t, stores[1], timebox.NewAggregateID("c", "2"), 2, 1)
	// Event 6 comes again if "second" died before committing it.
	has := func(want ...timebox.Position) bool {
		mu.Lock()
		defer mu.Unlock()
		got := slices.SortedFunc(slices.Values(seen["standby"]), timebox.Position.Compare)
		return slices.Equal(got, want) || slices.Equal(got, append([]timebox.Position{{Commit: 6}}, want...))
	}
	require.Eventually(t, func() bool { return has(timebox.Position{Commit: 7}, timebox.Position{Commit: 8}) },
		time.Minute, 5*time.Millisecond)
	standby()
	require.ErrorIs(t, <-standbyDone, context.Canceled)
}

// Readers catching up in full pages get the pages read ahead for them
// (readAhead), two at different positions at once, while appends go on:
// each sees every event after its start exactly once, in order, as one
// XRANGE of the whole feed does. Close leaves no read running (goleak).
func testFeedReadAhead(t *testing.T, open openFunc) {
	st, p := open(t)
	ctx := context.Background()
	ids := []timebox.AggregateID{
		timebox.NewAggregateID("ra", "1"), timebox.NewAggregateID("ra", "2"),
		timebox.NewAggregateID("ra", "3"),
	}
	heads := make([]int64, len(ids))
	for i := range 60 {
		a := i % len(ids)
		appendN(t, st, ids[a], heads[a], 5)
		heads[a] += 5
	}
	first, err := st.ReadAll(ctx, timebox.Position{}, 100)
	require.NoError(t, err)
	require.Len(t, first, 100)

	writing := make(chan struct{})
	go func() {
		defer close(writing)
		w := timebox.NewAggregateID("ra", "w")
		for i := range 40 {
			evs := make([]*timebox.Event, 4)
			for j := range evs {
				evs[j] = event(fmt.Sprint(i, j))
			}
			if err := st.AppendEvents(w, int64(4*i), evs); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	read := func(after timebox.Position, limit int) []*timebox.Event {
		var res []*timebox.Event
		for {
			done := false
			select {
			case <-writing:
				done = true
			default:
			}
			evs, err := st.ReadAll(ctx, after, limit)
			if err != nil {
				t.Error(err)
				return nil
			}
			res = append(res, evs...)
			if len(evs) > 0 {
				after = evs[len(evs)-1].Position
			} else if done {
				return res
			}
		}
	}
	var got [2][]*timebox.Event
	var wg sync.WaitGroup
	wg.Go(func() { got[0] = read(timebox.Position{}, 10) })
	wg.Go(func() { got[1] = read(first[99].Position, 15) })
	wg.Wait()
	require.False(t, t.Failed())

	entries, _, err := p.xrange(ctx, "-", 1000)
	require.NoError(t, err)
	all, _, _, err := feedEvents(nil, entries, timebox.Position{}, 1000)
	require.NoError(t, err)
	require.Len(t, all, 460)
	key := func(evs []*timebox.Event) []string {
		res := make([]string, len(evs))
		for i, ev := range evs {
			res[i] = fmt.Sprint(ev.Position, ev.AggregateID, ev.Sequence, string(ev.Data))
		}
		return res
	}
	require.Equal(t, key(all), key(got[0]))
	require.Equal(t, key(all[100:]), key(got[1]))
	require.Positive(t, p.ahead.hits.Load(), "no page read ahead was used")

	require.NoError(t, p.Close())
	p.ahead.mu.Lock()
	defer p.ahead.mu.Unlock()
	require.Empty(t, p.ahead.reads)
}
