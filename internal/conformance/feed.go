package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
)

// The Feed/ cases check the store-wide feed (ReadAll, Subscribe) and
// durable consumers (Consume and the consumer admin calls) of issue 12.
func feedCases(s Suite) []testCase {
	if s.NoFeed {
		return []testCase{{"NotSupported", testFeedNotSupported}}
	}
	return []testCase{
		{"ReadAllOrder", testReadAllOrder},
		{"ReadAllPages", testReadAllPages},
		{"ReadAllRacing", testReadAllRacing},
		{"ReadAllKeepsTrimmedAndArchived", func(t *testing.T, s2 Suite) {
			testReadAllKeepsTrimmedAndArchived(t, s2, s.Archiving)
		}},
		{"TrimmingExecutorsRace", testTrimmingExecutorsRace},
		{"SubscribeHistoryThenLive", testSubscribeHistoryThenLive},
		{"SubscribeFilters", testSubscribeFilters},
		{"SubscribeHandlerError", testSubscribeHandlerError},
		{"ConsumeResumes", testConsumeResumes},
		{"ConsumeHandlerError", testConsumeHandlerError},
		{"HandlerPanics", testHandlerPanics},
		{"ConsumeExclusive", testConsumeExclusive},
		{"ConsumeTakeover", testConsumeTakeover},
		{"ConsumePartitions", testConsumePartitions},
		{"ConsumerAdmin", testConsumerAdmin},
		{"ResetRunningConsumer", testResetRunningConsumer},
		{"ResetDuringFirstBatch", testResetDuringFirstBatch},
		{"ResetFromAnotherStore", testResetFromAnotherStore},
		{"ConsumeBadInput", testConsumeBadInput},
		{"ConsumeOwnerOnce", testConsumeOwnerOnce},
		{"CloseEndsFollowers", testCloseEndsFollowers},
		{"ConsumeLongLease", testConsumeLongLease},
		{"Leases", testLeases},
	}
}

// readAll reads the whole feed of st after pos, in pages of limit.
func readAll(
	t *testing.T, st *timebox.Store, pos timebox.Position, limit int,
) []*timebox.Event {
	t.Helper()
	var res []*timebox.Event
	for {
		evs, err := st.ReadAll(context.Background(), pos, limit)
		require.NoError(t, err)
		require.NotNil(t, evs)
		require.LessOrEqual(t, len(evs), limit)
		if len(evs) == 0 {
			return res
		}
		res = append(res, evs...)
		pos = evs[len(evs)-1].Position
	}
}

// requireFeedOrder checks the feed's rules over evs, the whole feed or a
// suffix of it: positions strictly increasing, each batch's events
// contiguous with offsets counting up, and each aggregate's sequences
// gapless and increasing.
func requireFeedOrder(t *testing.T, evs []*timebox.Event) {
	t.Helper()
	next := map[string]int64{}
	for i, ev := range evs {
		require.False(t, ev.Position.IsZero(), "event %d has no position", i)
		if i == 0 {
			continue
		}
		prev := evs[i-1]
		require.Equal(t, 1, ev.Position.Compare(prev.Position),
			"position %s after %s", ev.Position, prev.Position)
		if ev.Position.Commit == prev.Position.Commit {
			require.Equal(t, prev.Position.Offset+1, ev.Position.Offset,
				"offsets of one commit count up")
			require.True(t, ev.AggregateID.Equal(prev.AggregateID),
				"one commit holds one aggregate's batch")
		}
	}
	for _, ev := range evs {
		k := ev.AggregateID.String()
		if want, ok := next[k]; ok {
			require.Equal(t, want, ev.Sequence, "sequence of %s", k)
		}
		next[k] = ev.Sequence + 1
	}
}

func testReadAllOrder(t *testing.T, s Suite) {
	st := s.store(t)
	ctx := context.Background()
	evs, err := st.ReadAll(ctx, timebox.Position{}, 10)
	require.NoError(t, err)
	require.NotNil(t, evs)
	require.Empty(t, evs)
	_, err = st.ReadAll(ctx, timebox.Position{}, 0)
	require.ErrorIs(t, err, timebox.ErrInvalidLimit)

	a, b := aid("feed", "a"), aid("feed", "b")
	md := timebox.WithMetadata(ctx, timebox.Metadata{"actor": "ü"})
	require.NoError(t, st.AppendEventsContext(md, a, 0, items("a", 3)))
	require.NoError(t, st.AppendEvents(b, 0, items("b", 1)))
	require.NoError(t, st.AppendEvents(a, 3, items("c", 2)))

	all := readAll(t, st, timebox.Position{}, 100)
	require.Len(t, all, 6)
	requireFeedOrder(t, all)
	stored := append(events(t, st, a)[:3], events(t, st, b)...)
	stored = append(stored, events(t, st, a)[3:]...)
	for i, ev := range all {
		want := stored[i]
		assert.Equal(t, want.ID, ev.ID)
		assert.Equal(t, want.Type, ev.Type)
		assert.Equal(t, string(want.Data), string(ev.Data))
		assert.Equal(t, want.Metadata, ev.Metadata)
		assert.Equal(t, want.Sequence, ev.Sequence)
		assert.True(t, want.AggregateID.Equal(ev.AggregateID))
		assert.True(t, want.Timestamp.Equal(ev.Timestamp))
		assert.True(t, want.Position.IsZero(), "GetEvents leaves Position zero")
	}
	require.Equal(t, all[0].Position.Commit, all[2].Position.Commit)
	require.Equal(t, uint64(0), all[0].Position.Offset)

	// After the last position there is nothing; after a middle one, the
	// rest.
	rest, err := st.ReadAll(ctx, all[5].Position, 10)
	require.NoError(t, err)
	require.Empty(t, rest)
	rest, err = st.ReadAll(ctx, all[1].Position, 10)
	require.NoError(t, err)
	require.Len(t, rest, 4)
	require.Equal(t, all[2].ID, rest[0].ID)

	// Positions no event has: past a commit's last offset is its next
	// commit, and past every commit there is nothing.
	rest, err = st.ReadAll(ctx, timebox.Position{
		Commit: all[0].Position.Commit, Offset: math.MaxUint64,
	}, 10)
	require.NoError(t, err)
	require.Equal(t, eventIDs(all[3:]), eventIDs(rest))
	for _, after := range []timebox.Position{
		{Commit: math.MaxUint64}, {Commit: math.MaxUint64, Offset: math.MaxUint64},
	} {
		rest, err = st.ReadAll(ctx, after, 10)
		require.NoError(t, err)
		require.Empty(t, rest)
	}

	// The largest limit reads everything.
	rest, err = st.ReadAll(ctx, timebox.Position{}, math.MaxInt)
	require.NoError(t, err)
	require.Equal(t, eventIDs(all), eventIDs(rest))

	// Positions print and parse back.
	p, err := timebox.ParsePosition(all[4].Position.String())
	require.NoError(t, err)
	require.Equal(t, all[4].Position, p)
}

func testReadAllPages(t *testing.T, s Suite) {
	st := s.store(t)
	for i := range 7 {
		seed(t, st, aid("page", fmt.Sprint(i)), items("p", i%3+1)...)
	}
	whole := readAll(t, st, timebox.Position{}, 1000)
	require.Len(t, whole, 13)
	requireFeedOrder(t, whole)
	for _, limit := range []int{1, 2, 5} {
		paged := readAll(t, st, timebox.Position{}, limit)
		require.Equal(t, eventIDs(whole), eventIDs(paged), "limit %d", limit)
	}
}

func eventIDs(evs []*timebox.Event) []string {
	res := make([]string, len(evs))
	for i, ev := range evs {
		res[i] = ev.ID
	}
	return res
}

// testReadAllRacing runs many Executors racing on one aggregate and on a
// few others while a reader tails the feed: the reader sees every
// acknowledged event once, in position order, and never a position at or
// before one it has seen.
func testReadAllRacing(t *testing.T, s Suite) {
	st := s.store(t)
	ex := tallyExec(st)
	ids := []timebox.AggregateID{aid("race", "hot"), aid("race", "1"), aid("race", "2")}
	const writers, perWriter = 8, 12

	stop := make(chan struct{})
	var seen []*timebox.Event
	readerDone := make(chan error, 1)
	go func() {
		var pos timebox.Position
		for {
			evs, err := st.ReadAll(context.Background(), pos, 7)
			if err != nil {
				readerDone <- err
				return
			}
			for _, ev := range evs {
				if ev.Position.Compare(pos) <= 0 {
					readerDone <- fmt.Errorf("position %s after %s", ev.Position, pos)
					return
				}
				pos = ev.Position
				seen = append(seen, ev)
			}
			if len(evs) == 0 {
				select {
				case <-stop:
					readerDone <- nil
					return
				default:
					time.Sleep(time.Millisecond)
				}
			}
		}
	}()

	var wg sync.WaitGroup
	var acked sync.Map // value → struct{}
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				id := ids[0]
				if i%2 == 1 {
					id = ids[1+w%2]
				}
				v := fmt.Sprintf("w%d-%d", w, i)
				if _, err := ex.Exec(id, add(v)); err == nil {
					acked.Store(`"`+v+`"`, struct{}{})
				} else {
					assert.ErrorIs(t, err, timebox.ErrMaxRetriesExceeded)
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	require.NoError(t, <-readerDone)
	// The tail may have stopped before the last commits were visible.
	if len(seen) > 0 {
		seen = append(seen, readAll(t, st, seen[len(seen)-1].Position, 50)...)
	} else {
		seen = readAll(t, st, timebox.Position{}, 50)
	}
	requireFeedOrder(t, seen)
	require.Equal(t, eventIDs(readAll(t, st, timebox.Position{}, 1000)), eventIDs(seen))
	counts := map[string]int{}
	for _, ev := range seen {
		counts[string(ev.Data)]++
	}
	acked.Range(func(k, _ any) bool {
		assert.Equal(t, 1, counts[k.(string)], "acknowledged %s", k)
		return true
	})
	for v, n := range counts {
		assert.Equal(t, 1, n, "%s in the feed", v)
	}
	total := 0
	for _, id := range ids {
		total += len(events(t, st, id))
	}
	require.Len(t, seen, total, "the feed holds exactly the stored events")
}

func testReadAllKeepsTrimmedAndArchived(t *testing.T, s Suite, archiving bool) {
	st := s.store(t, timebox.Config{TrimEvents: true})
	trimmed, archived := aid("keep", "trimmed"), aid("keep", "archived")
	seed(t, st, trimmed, items("t", 4)...)
	seed(t, st, archived, items("a", 2)...)
	// An Executor's snapshot trims through the conditional snapshot
	// (SnapshotRequest.IfHead), a path of its own in some backends.
	byExec, ex := aid("keep", "exec"), tallyExec(st)
	exec(t, ex, byExec, add("x", "y", "z"), "x", "y", "z")
	before := readAll(t, st, timebox.Position{}, 100)
	require.Len(t, before, 9)

	// A consumer registered before the trim and the archive still gets
	// every event after them.
	ctx := context.Background()
	claimed := make(chan struct{})
	cctx, cancel := context.WithCancel(ctx)
	go func() {
		_ = st.Consume(cctx, "keeper", func(context.Context, *timebox.Event) error {
			select {
			case <-claimed:
			default:
				close(claimed)
			}
			return errors.New("stop at the first event")
		})
	}()
	waitClosed(t, claimed)
	cancel()

	require.NoError(t, st.PutSnapshot(trimmed, map[string]int{"n": 3}, 3))
	require.Len(t, events(t, st, trimmed), 1, "the trim took effect")
	require.NoError(t, ex.SaveSnapshot(byExec))
	require.Empty(t, events(t, st, byExec), "the Executor's trim took effect")
	if archiving {
		require.NoError(t, st.Archive(archived))
		require.Empty(t, events(t, st, archived))
	}
	after := readAll(t, st, timebox.Position{}, 100)
	require.Equal(t, eventIDs(before), eventIDs(after))

	got := consumeN(t, st, "keeper", len(before))
	require.Equal(t, eventIDs(before), eventIDs(got))
}

// testTrimmingExecutorsRace races Executors on one aggregate, each also
// saving trimming snapshots, busy ones in the background and its own
// now and then: every command is acknowledged once, and the feed still
// holds every event, in sequence order, however early it was trimmed.
func testTrimmingExecutorsRace(t *testing.T, s Suite) {
	st := s.store(t, timebox.Config{
		TrimEvents: true, SnapshotMinEvents: 1, SnapshotRatio: 0.01, MaxRetries: 1000,
	})
	id := aid("tally", "race")
	const workers, each = 4, 25
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		ex := tallyExec(st)
		wg.Go(func() {
			for i := range each {
				v := fmt.Sprintf("w%d-%d", w, i)
				got, err := ex.Exec(id, add(v))
				if err == nil && !slices.Contains(got.Items, v) {
					err = fmt.Errorf("state after its own command lacks %s", v)
				}
				if err == nil && i%7 == 0 {
					err = ex.SaveSnapshot(id)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	final, err := tallyExec(st).Get(id)
	require.NoError(t, err)
	require.Len(t, final.Items, workers*each)
	var evs []*timebox.Event
	waitUntil(t, func() bool {
		evs = readAll(t, st, timebox.Position{}, 30)
		return len(evs) >= workers*each
	})
	require.Len(t, evs, workers*each)
	requireFeedOrder(t, evs)
	items := make([]string, len(evs))
	for i, ev := range evs {
		require.EqualValues(t, i, ev.Sequence)
		require.NoError(t, json.Unmarshal(ev.Data, &items[i]))
	}
	require.Equal(t, final.Items, items, "the state folds the feed's events in order")
}

// collector gathers what a feed handler is given.
type collector struct {
	mu     sync.Mutex
	evs    []*timebox.Event
	change chan struct{}
}

func newCollector() *collector {
	return &collector{change: make(chan struct{}, 1)}
}

func (c *collector) handle(_ context.Context, ev *timebox.Event) error {
	c.mu.Lock()
	c.evs = append(c.evs, ev)
	c.mu.Unlock()
	select {
	case c.change <- struct{}{}:
	default:
	}
	return nil
}

func (c *collector) events() []*timebox.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.evs)
}

// waitFor waits until the collector holds at least n events, failing t
// after waitTimeout, and returns them.
func (c *collector) waitFor(t *testing.T, n int) []*timebox.Event {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		if evs := c.events(); len(evs) >= n {
			return evs
		}
		select {
		case <-c.change:
		case <-deadline:
			t.Fatalf("handler got %d of %d events after %v", len(c.events()), n, waitTimeout)
		}
	}
}

// run runs fn in a goroutine and returns a function that cancels it and
// returns its error.
func run(fn func(ctx context.Context) error) func() error {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	return func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(waitTimeout):
			return fmt.Errorf("did not return %v after cancel", waitTimeout)
		}
	}
}

// consumeN runs consumer name until its handler has n events, stops it
// and returns them.
func consumeN(
	t *testing.T, st *timebox.Store, name string, n int, opts ...timebox.FeedOption,
) []*timebox.Event {
	t.Helper()
	c := newCollector()
	stop := run(func(ctx context.Context) error {
		return st.Consume(ctx, name, c.handle, opts...)
	})
	c.waitFor(t, n)
	require.ErrorIs(t, stop(), context.Canceled)
	return c.events()
}

func testSubscribeHistoryThenLive(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("sub", "1")
	seed(t, st, id, items("h", 3)...)
	c := newCollector()
	stop := run(func(ctx context.Context) error {
		return st.Subscribe(ctx, timebox.Position{}, c.handle)
	})
	c.waitFor(t, 3)
	require.NoError(t, st.AppendEvents(id, 3, items("l", 2)))
	require.NoError(t, st.AppendEvents(aid("sub", "2"), 0, items("m", 1)))
	got := c.waitFor(t, 6)
	require.ErrorIs(t, stop(), context.Canceled)
	require.Len(t, got, 6)
	requireFeedOrder(t, got)
	require.Equal(t, eventIDs(readAll(t, st, timebox.Position{}, 10)), eventIDs(got))

	// From a position: only what comes after it.
	c2 := newCollector()
	stop = run(func(ctx context.Context) error {
		return st.Subscribe(ctx, got[3].Position, c2.handle)
	})
	require.Equal(t, eventIDs(got[4:]), eventIDs(c2.waitFor(t, 2)))
	require.ErrorIs(t, stop(), context.Canceled)
}

func testSubscribeFilters(t *testing.T, s Suite) {
	st := s.store(t)
	seed(t, st, aid("order", "1"), ev("created", `1`), ev("paid", `2`))
	seed(t, st, aid("user", "1"), ev("created", `3`))
	seed(t, st, aid("orders", "2"), ev("created", `4`))
	seed(t, st, aid("order", "2"), ev("paid", `5`), ev("created", `6`))

	check := func(want []string, opts ...timebox.FeedOption) {
		t.Helper()
		c := newCollector()
		stop := run(func(ctx context.Context) error {
			return st.Subscribe(ctx, timebox.Position{}, c.handle, opts...)
		})
		c.waitFor(t, len(want))
		require.ErrorIs(t, stop(), context.Canceled)
		var data []string
		for _, e := range c.events() {
			data = append(data, string(e.Data))
		}
		require.Equal(t, want, data)
	}
	check([]string{"1", "3", "4", "6"}, timebox.WithEventTypes("created"))
	check([]string{"1", "2", "5", "6"}, timebox.WithAggregatePrefix(aid("order")))
	check([]string{"2", "5"}, timebox.WithEventTypes("paid", "refunded"),
		timebox.WithAggregatePrefix(aid("order")))
}

func testSubscribeHandlerError(t *testing.T, s Suite) {
	st := s.store(t)
	seed(t, st, aid("err", "1"), items("e", 3)...)
	boom := errors.New("boom")
	var calls atomic.Int32
	ctx, cancel := contextWithTimeout(waitTimeout)
	defer cancel()
	err := st.Subscribe(ctx, timebox.Position{}, func(context.Context, *timebox.Event) error {
		if calls.Add(1) == 2 {
			return boom
		}
		return nil
	})
	require.ErrorIs(t, err, boom)
	require.Equal(t, int32(2), calls.Load())
}

func testConsumeResumes(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("resume", "1")
	seed(t, st, id, items("a", 5)...)
	first := consumeN(t, st, "resumer", 5, timebox.WithBatchSize(2))
	require.Len(t, first, 5)
	requireFeedOrder(t, first)

	require.NoError(t, st.AppendEvents(id, 5, items("b", 3)))
	second := consumeN(t, st, "resumer", 3)
	// A clean stop committed everything handled: nothing again.
	require.Equal(t, eventIDs(readAll(t, st, first[4].Position, 10)), eventIDs(second))

	list, err := st.Consumers(context.Background())
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, "resumer", list[0].Name)
	require.Len(t, list[0].Partitions, 1)
	require.Equal(t, second[2].Position, list[0].Partitions[0].Checkpoint)
	require.Empty(t, list[0].Partitions[0].Owner, "a stopped consumer holds no lease")
}

func testConsumeHandlerError(t *testing.T, s Suite) {
	st := s.store(t)
	seed(t, st, aid("cerr", "1"), items("e", 4)...)
	all := readAll(t, st, timebox.Position{}, 10)
	boom := errors.New("boom")
	ctx, cancel := contextWithTimeout(waitTimeout)
	defer cancel()
	var handled []string
	err := st.Consume(ctx, "failing", func(_ context.Context, ev *timebox.Event) error {
		if ev.ID == all[2].ID {
			return boom
		}
		handled = append(handled, ev.ID)
		return nil
	})
	require.ErrorIs(t, err, boom)
	require.Equal(t, eventIDs(all[:2]), handled)

	// The failed event is the first one handled after a restart.
	got := consumeN(t, st, "failing", 2)
	require.Equal(t, eventIDs(all[2:]), eventIDs(got))
}

// testHandlerPanics checks that a handler's panic comes back from
// Subscribe and Consume as a *PanicError, not a crash of the process (a
// Consume handler runs on a goroutine of Consume's), and that the
// consumer's checkpoint stays before the event, its lease released: the
// next run starts with that event at once. A Consume handler that calls
// runtime.Goexit ends Consume the same way.
func testHandlerPanics(t *testing.T, s Suite) {
	st := s.store(t)
	seed(t, st, aid("hpanic", "1"), items("e", 4)...)
	all := readAll(t, st, timebox.Position{}, 10)
	ctx, cancel := contextWithTimeout(waitTimeout)
	defer cancel()

	err := st.Subscribe(ctx, timebox.Position{}, func(_ context.Context, ev *timebox.Event) error {
		if ev.ID == all[1].ID {
			panic("subscriber bug")
		}
		return nil
	})
	var pe *timebox.PanicError
	require.ErrorAs(t, err, &pe)
	require.ErrorIs(t, err, timebox.ErrHandlerPanicked)
	require.Equal(t, "subscriber bug", pe.Value)
	require.NotEmpty(t, pe.Stack)

	var handled []string
	err = st.Consume(ctx, "panicky", func(_ context.Context, ev *timebox.Event) error {
		if ev.ID == all[2].ID {
			panic(errors.New("consumer bug"))
		}
		handled = append(handled, ev.ID)
		return nil
	}, timebox.WithBatchSize(1))
	require.ErrorAs(t, err, &pe)
	require.ErrorIs(t, err, timebox.ErrHandlerPanicked)
	require.EqualError(t, pe.Unwrap(), "consumer bug")
	require.Equal(t, eventIDs(all[:2]), handled)

	handled = nil
	err = st.Consume(ctx, "panicky", func(_ context.Context, ev *timebox.Event) error {
		handled = append(handled, ev.ID)
		runtime.Goexit()
		return nil
	}, timebox.WithLeaseTTL(time.Hour))
	require.ErrorIs(t, err, timebox.ErrHandlerPanicked)
	require.Equal(t, eventIDs(all[2:3]), handled, "the panicking event comes first")

	got := consumeN(t, st, "panicky", 2, timebox.WithLeaseTTL(time.Hour))
	require.Equal(t, eventIDs(all[2:]), eventIDs(got))
}

// testConsumeExclusive runs one consumer in two processes: one handles
// everything while the other waits; stopping the first hands over.
func testConsumeExclusive(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("excl", "1")
	seed(t, st, id, items("a", 3)...)
	var mu sync.Mutex
	by := map[string][]string{} // owner → event IDs
	active := map[string]bool{}
	var overlap atomic.Bool
	handler := func(owner string) timebox.FeedHandler {
		return func(_ context.Context, ev *timebox.Event) error {
			mu.Lock()
			active[owner] = true
			if len(active) > 1 {
				overlap.Store(true)
			}
			by[owner] = append(by[owner], ev.ID)
			mu.Unlock()
			time.Sleep(time.Millisecond)
			mu.Lock()
			delete(active, owner)
			mu.Unlock()
			return nil
		}
	}
	count := func(owner string) int {
		mu.Lock()
		defer mu.Unlock()
		return len(by[owner])
	}
	opts := []timebox.FeedOption{timebox.WithLeaseTTL(time.Second)}
	stopA := run(func(ctx context.Context) error {
		return st.Consume(ctx, "excl", handler("A"), append(opts, timebox.WithOwner("A"))...)
	})
	waitUntil(t, func() bool { return count("A") == 3 })
	stopB := run(func(ctx context.Context) error {
		return st.Consume(ctx, "excl", handler("B"), append(opts, timebox.WithOwner("B"))...)
	})
	require.NoError(t, st.AppendEvents(id, 3, items("b", 2)))
	waitUntil(t, func() bool { return count("A") == 5 })
	list, err := st.Consumers(context.Background())
	require.NoError(t, err)
	require.Equal(t, "A", list[0].Partitions[0].Owner)

	require.ErrorIs(t, stopA(), context.Canceled)
	require.NoError(t, st.AppendEvents(id, 5, items("c", 2)))
	waitUntil(t, func() bool { return count("B") == 2 })
	require.ErrorIs(t, stopB(), context.Canceled)
	require.False(t, overlap.Load(), "two owners handled events at once")
	all := eventIDs(readAll(t, st, timebox.Position{}, 10))
	require.Equal(t, all[:5], by["A"])
	require.Equal(t, all[5:], by["B"])
}

// waitUntil polls cond until it holds, failing t after waitTimeout.
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %v", waitTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// testConsumeTakeover stalls the owner of a consumer in its handler, as a
// hung or dead process would: its lease runs out and another process
// takes over from the checkpoint; the stalled one, once back, has lost
// its lease and commits nothing.
func testConsumeTakeover(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("takeover", "1")
	seed(t, st, id, items("a", 2)...)
	all := readAll(t, st, timebox.Position{}, 10)
	release := make(chan struct{})
	stalled := make(chan struct{})
	var once sync.Once
	ttl := timebox.WithLeaseTTL(500 * time.Millisecond)
	stopA := run(func(ctx context.Context) error {
		return st.Consume(ctx, "takeover", func(context.Context, *timebox.Event) error {
			once.Do(func() { close(stalled) })
			<-release
			return nil
		}, ttl, timebox.WithOwner("A"))
	})
	waitClosed(t, stalled)
	c := newCollector()
	stopB := run(func(ctx context.Context) error {
		return st.Consume(ctx, "takeover", c.handle, ttl, timebox.WithOwner("B"))
	})
	got := c.waitFor(t, 2)
	require.Equal(t, eventIDs(all), eventIDs(got), "B starts at the checkpoint A never moved")
	close(release)
	require.NoError(t, st.AppendEvents(id, 2, items("b", 1)))
	got = c.waitFor(t, 3)
	require.ErrorIs(t, stopA(), context.Canceled)
	require.ErrorIs(t, stopB(), context.Canceled)
	require.Len(t, c.events(), 3)
	list, err := st.Consumers(context.Background())
	require.NoError(t, err)
	require.Equal(t, got[2].Position, list[0].Partitions[0].Checkpoint)
}

// testConsumePartitions runs a consumer split in four partitions in two
// processes that may hold two each: they share the partitions, every
// event is handled once, each aggregate's events in order by one process.
func testConsumePartitions(t *testing.T, s Suite) {
	st := s.store(t)
	const n, aggs = 4, 12
	for i := range aggs {
		seed(t, st, aid("part", fmt.Sprint(i)), items("p", 3)...)
	}
	type hit struct {
		ev    *timebox.Event
		owner string
	}
	var mu sync.Mutex
	var hits []hit
	handler := func(owner string) timebox.FeedHandler {
		return func(_ context.Context, ev *timebox.Event) error {
			mu.Lock()
			defer mu.Unlock()
			hits = append(hits, hit{ev, owner})
			return nil
		}
	}
	opts := []timebox.FeedOption{
		timebox.WithPartitions(n), timebox.WithPartitionLimit(2),
		timebox.WithBatchSize(5),
	}
	stopA := run(func(ctx context.Context) error {
		return st.Consume(ctx, "parts", handler("A"), append(opts, timebox.WithOwner("A"))...)
	})
	stopB := run(func(ctx context.Context) error {
		return st.Consume(ctx, "parts", handler("B"), append(opts, timebox.WithOwner("B"))...)
	})
	owners := func() map[string]int {
		list, err := st.Consumers(context.Background())
		require.NoError(t, err)
		res := map[string]int{}
		for _, c := range list {
			for _, p := range c.Partitions {
				res[p.Owner]++
			}
		}
		return res
	}
	waitUntil(t, func() bool {
		o := owners()
		return o["A"] == 2 && o["B"] == 2
	})
	for i := range aggs {
		require.NoError(t, st.AppendEvents(aid("part", fmt.Sprint(i)), 3, items("q", 2)))
	}
	waitUntil(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(hits) >= aggs*5
	})
	require.ErrorIs(t, stopA(), context.Canceled)
	require.ErrorIs(t, stopB(), context.Canceled)
	require.Len(t, hits, aggs*5, "each event once")
	byAgg := map[string][]hit{}
	for _, h := range hits {
		k := h.ev.AggregateID.String()
		byAgg[k] = append(byAgg[k], h)
	}
	for k, hs := range byAgg {
		for i, h := range hs {
			require.Equal(t, int64(i), h.ev.Sequence, "%s in order", k)
			require.Equal(t, hs[0].owner, h.owner, "%s handled by one owner", k)
		}
	}
	list, err := st.Consumers(context.Background())
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Len(t, list[0].Partitions, n)
	for i, p := range list[0].Partitions {
		require.Equal(t, i, p.Partition)
	}

	err = st.Consume(context.Background(), "parts", handler("C"), timebox.WithPartitions(3))
	require.ErrorIs(t, err, timebox.ErrPartitionMismatch)
}

func testConsumerAdmin(t *testing.T, s Suite) {
	st := s.store(t)
	ctx := context.Background()
	seed(t, st, aid("admin", "1"), items("a", 4)...)
	all := readAll(t, st, timebox.Position{}, 10)
	consumeN(t, st, "admin-b", 4)
	consumeN(t, st, "admin-a", 4)
	list, err := st.Consumers(ctx)
	require.NoError(t, err)
	require.Len(t, list, 2)
	require.Equal(t, "admin-a", list[0].Name)
	require.Equal(t, all[3].Position, list[0].Partitions[0].Checkpoint)

	require.NoError(t, st.ResetConsumer(ctx, "admin-a", all[1].Position))
	got := consumeN(t, st, "admin-a", 2)
	require.Equal(t, eventIDs(all[2:]), eventIDs(got))
	require.NoError(t, st.ResetConsumer(ctx, "admin-a", timebox.Position{}))
	got = consumeN(t, st, "admin-a", 4)
	require.Equal(t, eventIDs(all), eventIDs(got))

	require.NoError(t, st.DeleteConsumer(ctx, "admin-a"))
	require.ErrorIs(t, st.DeleteConsumer(ctx, "admin-a"), timebox.ErrConsumerNotFound)
	require.ErrorIs(t, st.ResetConsumer(ctx, "nobody", timebox.Position{}),
		timebox.ErrConsumerNotFound)
	list, err = st.Consumers(ctx)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, "admin-b", list[0].Name)
}

// testConsumeLongLease runs a consumer whose lease lasts as long as a
// Duration can: it handles events, and a consumer run after it stopped
// takes its partition over and goes on from its checkpoint.
func testConsumeLongLease(t *testing.T, s Suite) {
	st := s.store(t)
	seed(t, st, aid("long", "1"), items("l", 4)...)
	all := readAll(t, st, timebox.Position{}, 10)
	got := consumeN(t, st, "long", 4, timebox.WithLeaseTTL(math.MaxInt64))
	require.Equal(t, eventIDs(all), eventIDs(got))
	require.NoError(t, st.AppendEvents(aid("long", "1"), 4, items("m", 1)))
	got = consumeN(t, st, "long", 1, timebox.WithLeaseTTL(24*365*time.Hour))
	require.Equal(t, eventIDs(readAll(t, st, all[3].Position, 10)), eventIDs(got))
}

// testResetRunningConsumer resets a consumer while a process runs it:
// the process loses its lease and handles everything again from the
// position it was reset to, then goes on with new events.
func testResetRunningConsumer(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("reset", "1")
	seed(t, st, id, items("a", 3)...)
	c := newCollector()
	stop := run(func(ctx context.Context) error {
		return st.Consume(ctx, "resetting", c.handle, timebox.WithLeaseTTL(300*time.Millisecond))
	})
	first := c.waitFor(t, 3)
	require.NoError(t, st.ResetConsumer(context.Background(), "resetting", first[0].Position))
	require.NoError(t, st.AppendEvents(id, 3, items("b", 1)))
	all := readAll(t, st, timebox.Position{}, 10)
	// It may handle the new event under the lease the reset ended, but
	// then handles everything after the reset position again, in order,
	// and that is the last it handles.
	want := eventIDs(all[1:])
	deadline := time.After(waitTimeout)
	for {
		ids := eventIDs(c.events())
		if len(ids) >= 3+len(want) && slices.Equal(ids[len(ids)-len(want):], want) {
			require.Equal(t, eventIDs(all[:3]), ids[:3])
			break
		}
		select {
		case <-c.change:
		case <-deadline:
			t.Fatalf("after the reset the consumer handled %q, want it to end with %q", ids, want)
		}
	}
	require.ErrorIs(t, stop(), context.Canceled)
}

// testCloseEndsFollowers closes the store under a Subscribe and a
// Consume waiting for new events: both return ErrClosed rather than wait
// on.
func testCloseEndsFollowers(t *testing.T, s Suite) {
	st := s.store(t)
	seed(t, st, aid("closing", "1"), items("c", 2)...)
	subs, cons := newCollector(), newCollector()
	ctx := context.Background()
	subDone := make(chan error, 1)
	go func() { subDone <- st.Subscribe(ctx, timebox.Position{}, subs.handle) }()
	consDone := make(chan error, 1)
	go func() { consDone <- st.Consume(ctx, "closing", cons.handle) }()
	subs.waitFor(t, 2)
	cons.waitFor(t, 2)
	// Another owner waits for the lease the first holds (for an hour).
	waitDone := make(chan error, 1)
	go func() {
		waitDone <- st.Consume(ctx, "closing", cons.handle,
			timebox.WithOwner("second"), timebox.WithLeaseTTL(time.Hour))
	}()
	require.Eventually(t, func() bool {
		list, err := st.Consumers(ctx)
		return err == nil && len(list) == 1 && len(list[0].Partitions) == 1 &&
			list[0].Partitions[0].Owner != ""
	}, waitTimeout, 10*time.Millisecond)
	require.NoError(t, st.Close())
	for _, done := range []chan error{subDone, consDone, waitDone} {
		select {
		case err := <-done:
			require.ErrorIs(t, err, timebox.ErrClosed)
		case <-time.After(waitTimeout):
			t.Fatalf("a follower did not return within %v of Close", waitTimeout)
		}
	}
}

// testConsumeOwnerOnce runs a consumer under one owner twice at once in
// a Store: the second run is refused (it would share the first's leases
// and handle the same events), and allowed once the first has ended.
func testConsumeOwnerOnce(t *testing.T, s Suite) {
	st := s.store(t)
	seed(t, st, aid("owner", "1"), items("o", 1)...)
	c := newCollector()
	first := run(func(ctx context.Context) error {
		return st.Consume(ctx, "owned", c.handle, timebox.WithOwner("me"))
	})
	c.waitFor(t, 1)
	ctx, cancel := contextWithTimeout(waitTimeout)
	defer cancel()
	h := func(context.Context, *timebox.Event) error { return nil }
	require.ErrorIs(t, st.Consume(ctx, "owned", h, timebox.WithOwner("me")),
		timebox.ErrInvalidConsumer)
	require.ErrorIs(t, first(), context.Canceled)

	again := newCollector()
	second := run(func(ctx context.Context) error {
		return st.Consume(ctx, "owned", again.handle, timebox.WithOwner("me"))
	})
	require.NoError(t, st.AppendEvents(aid("owner", "1"), 1, items("p", 1)))
	again.waitFor(t, 1)
	require.ErrorIs(t, second(), context.Canceled)
}

func testConsumeBadInput(t *testing.T, s Suite) {
	st := s.store(t)
	ctx := context.Background()
	h := func(context.Context, *timebox.Event) error { return nil }
	for _, name := range []string{"", "a\x00b", "\xff", string(make([]byte, 201))} {
		require.ErrorIs(t, st.Consume(ctx, name, h), timebox.ErrInvalidConsumer, "%q", name)
		require.ErrorIs(t, st.DeleteConsumer(ctx, name), timebox.ErrInvalidConsumer)
	}
	require.ErrorIs(t, st.Consume(ctx, "c", nil), timebox.ErrInvalidConsumer)
	require.ErrorIs(t, st.Consume(ctx, "c", h, timebox.WithPartitions(0)), timebox.ErrInvalidConsumer)
	require.ErrorIs(t, st.Consume(ctx, "c", h, timebox.WithLeaseTTL(time.Millisecond)),
		timebox.ErrInvalidConsumer)
	require.ErrorIs(t, st.Consume(ctx, "c", h, timebox.WithOwner("")), timebox.ErrInvalidConsumer)
	require.ErrorIs(t, st.Consume(ctx, "c", h, timebox.WithPartitionLimit(-1)),
		timebox.ErrInvalidConsumer)
	require.ErrorIs(t, st.Consume(ctx, "c", h, timebox.WithBatchSize(0)), timebox.ErrInvalidLimit)

	bad := timebox.WithAggregatePrefix(aid("a", ""))
	require.ErrorIs(t, st.Consume(ctx, "c", h, bad), timebox.ErrInvalidAggregateID)
	require.ErrorIs(t, st.Subscribe(ctx, timebox.Position{}, h, bad), timebox.ErrInvalidAggregateID)
	require.ErrorIs(t, st.Subscribe(ctx, timebox.Position{}, nil), timebox.ErrInvalidConsumer)
	require.ErrorIs(t, st.Subscribe(ctx, timebox.Position{}, h, timebox.WithPartitions(2)),
		timebox.ErrInvalidConsumer)
	list, err := st.Consumers(ctx)
	require.NoError(t, err)
	require.Empty(t, list, "bad input created no consumer")

	require.NoError(t, st.Close())
	_, err = st.ReadAll(ctx, timebox.Position{}, 1)
	require.ErrorIs(t, err, timebox.ErrClosed)
	require.ErrorIs(t, st.Subscribe(ctx, timebox.Position{}, h), timebox.ErrClosed)
	require.ErrorIs(t, st.Consume(ctx, "c", h), timebox.ErrClosed)
	_, err = st.Consumers(ctx)
	require.ErrorIs(t, err, timebox.ErrClosed)
}

// testLeases checks the ConsumerBackend seam's lease rules directly.
func testLeases(t *testing.T, s Suite) {
	b := s.backend(t)
	c, ok := b.(timebox.ConsumerBackend)
	require.True(t, ok, "backend implements timebox.ConsumerBackend")
	ctx := context.Background()
	la := timebox.Lease{Consumer: "leases", Partitions: 2, Owner: "A", TTL: time.Minute}
	lb := la
	lb.Owner = "B"

	first, err := c.ClaimPartition(ctx, la)
	require.NoError(t, err)
	require.True(t, first.Checkpoint.IsZero())
	_, err = c.ClaimPartition(ctx, lb)
	require.ErrorIs(t, err, timebox.ErrLeaseHeld)
	require.ErrorIs(t, c.CommitPartition(ctx, lb, timebox.Position{Commit: 9}), timebox.ErrLeaseLost)
	p1 := timebox.Position{Commit: 7, Offset: 2}
	require.NoError(t, c.CommitPartition(ctx, la, p1))
	cl, err := c.ClaimPartition(ctx, la)
	require.NoError(t, err, "an owner renews its own lease")
	require.Equal(t, timebox.Claim{Checkpoint: p1, Epoch: first.Epoch}, cl)

	// The other partition is free, and is created with the consumer.
	lb1 := lb
	lb1.Partition = 1
	cl, err = c.ClaimPartition(ctx, lb1)
	require.NoError(t, err)
	require.Equal(t, timebox.Claim{Epoch: first.Epoch}, cl)
	wrong := lb
	wrong.Partitions = 3
	_, err = c.ClaimPartition(ctx, wrong)
	require.ErrorIs(t, err, timebox.ErrPartitionMismatch)

	require.NoError(t, c.ReleasePartition(ctx, la))
	require.NoError(t, c.ReleasePartition(ctx, la), "releasing a lease not held")
	cl, err = c.ClaimPartition(ctx, lb)
	require.NoError(t, err)
	require.Equal(t, timebox.Claim{Checkpoint: p1, Epoch: first.Epoch}, cl,
		"the checkpoint and epoch survive a release")

	// A reset ends every lease and changes the epoch, even a reset to
	// the checkpoint the partition had.
	require.NoError(t, c.ResetConsumer(ctx, "leases", p1))
	require.ErrorIs(t, c.CommitPartition(ctx, lb, p1), timebox.ErrLeaseLost)
	cl, err = c.ClaimPartition(ctx, lb)
	require.NoError(t, err)
	require.Equal(t, p1, cl.Checkpoint)
	require.NotEqual(t, first.Epoch, cl.Epoch, "a reset gives a new epoch")
	reset := cl.Epoch
	p2 := timebox.Position{Commit: 3}
	require.NoError(t, c.ResetConsumer(ctx, "leases", p2))
	require.ErrorIs(t, c.CommitPartition(ctx, lb, p1), timebox.ErrLeaseLost)
	require.ErrorIs(t, c.CommitPartition(ctx, lb1, p1), timebox.ErrLeaseLost)
	list, err := c.ListConsumers(ctx)
	require.NoError(t, err)
	require.Len(t, list, 1)
	for _, p := range list[0].Partitions {
		require.Equal(t, p2, p.Checkpoint)
		require.Empty(t, p.Owner)
	}

	// An expired lease can be claimed by another owner, and its old
	// owner's commit is refused.
	short := la
	short.TTL = 200 * time.Millisecond
	cl, err = c.ClaimPartition(ctx, short)
	require.NoError(t, err)
	require.NotContains(t, []uint64{first.Epoch, reset}, cl.Epoch)
	second := cl.Epoch
	waitUntil(t, func() bool {
		_, err := c.ClaimPartition(ctx, lb)
		if err != nil {
			require.ErrorIs(t, err, timebox.ErrLeaseHeld)
		}
		return err == nil
	})
	require.ErrorIs(t, c.CommitPartition(ctx, short, p1), timebox.ErrLeaseLost)

	require.NoError(t, c.DeleteConsumer(ctx, "leases"))
	require.ErrorIs(t, c.DeleteConsumer(ctx, "leases"), timebox.ErrConsumerNotFound)
	require.ErrorIs(t, c.CommitPartition(ctx, lb, p1), timebox.ErrLeaseLost)
	list, err = c.ListConsumers(ctx)
	require.NoError(t, err)
	require.Empty(t, list)

	// A consumer created again after its delete never has an epoch it
	// had before.
	cl, err = c.ClaimPartition(ctx, la)
	require.NoError(t, err)
	require.True(t, cl.Checkpoint.IsZero())
	require.NotContains(t, []uint64{first.Epoch, reset, second}, cl.Epoch)
	require.NoError(t, c.DeleteConsumer(ctx, "leases"))
}

func testFeedNotSupported(t *testing.T, s Suite) {
	st := s.store(t)
	ctx := context.Background()
	h := func(context.Context, *timebox.Event) error { return nil }
	_, err := st.ReadAll(ctx, timebox.Position{}, 1)
	require.ErrorIs(t, err, timebox.ErrFeedNotSupported)
	require.ErrorIs(t, st.Subscribe(ctx, timebox.Position{}, h), timebox.ErrFeedNotSupported)
	require.ErrorIs(t, st.Consume(ctx, "c", h), timebox.ErrFeedNotSupported)
	_, err = st.Consumers(ctx)
	require.ErrorIs(t, err, timebox.ErrFeedNotSupported)
	require.ErrorIs(t, st.ResetConsumer(ctx, "c", timebox.Position{}), timebox.ErrFeedNotSupported)
	require.ErrorIs(t, st.DeleteConsumer(ctx, "c"), timebox.ErrFeedNotSupported)
}

// testResetDuringFirstBatch resets (or deletes) a consumer while its
// handler holds the first event of its first batch: the reset position,
// zero, is also the checkpoint the consumer had committed, and it once
// took it for its own, went on after the batch and undid the reset. It
// must handle every event again.
func testResetDuringFirstBatch(t *testing.T, s Suite) {
	for _, del := range []bool{false, true} {
		st := s.store(t)
		resetDuringFirstBatch(t, st, st, del)
	}
}

// testResetFromAnotherStore is testResetDuringFirstBatch with the reset
// or delete made through another Store on the same backend, as another
// process would make it: only what the backend stores tells the running
// consumer.
func testResetFromAnotherStore(t *testing.T, s Suite) {
	for _, del := range []bool{false, true} {
		b := s.backend(t)
		sts := make([]*timebox.Store, 2)
		for i := range sts {
			st, err := timebox.NewStore(b, timebox.Config{})
			require.NoError(t, err)
			t.Cleanup(func() { _ = st.Close() })
			sts[i] = st
		}
		resetDuringFirstBatch(t, sts[0], sts[1], del)
	}
}

// resetDuringFirstBatch runs a consumer on st and, while its handler
// holds the first event, resets it to zero (or deletes it) through admin;
// the consumer must then handle every event again.
func resetDuringFirstBatch(t *testing.T, st, admin *timebox.Store, del bool) {
	seed(t, st, aid("first", "1"), items("f", 3)...)
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	c := newCollector()
	h := func(ctx context.Context, ev *timebox.Event) error {
		once.Do(func() { close(entered); <-release })
		return c.handle(ctx, ev)
	}
	stop := run(func(ctx context.Context) error {
		return st.Consume(ctx, "first", h, timebox.WithLeaseTTL(time.Minute))
	})
	select {
	case <-entered:
	case <-time.After(waitTimeout):
		t.Fatal("handler not called")
	}
	ctx := context.Background()
	if del {
		require.NoError(t, admin.DeleteConsumer(ctx, "first"))
	} else {
		require.NoError(t, admin.ResetConsumer(ctx, "first", timebox.Position{}))
	}
	close(release)
	got := c.waitFor(t, 6)
	require.ErrorIs(t, stop(), context.Canceled)
	ids := eventIDs(got)
	require.Equal(t, ids[:3], ids[3:6], "delete %v: every event handled again", del)
}
