package raft

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.etcd.io/bbolt"

	"github.com/kode4food/timebox"
)

// feedLog collects what a subscription or consumer handled.
type feedLog struct {
	mu  sync.Mutex
	evs []*timebox.Event
}

func (l *feedLog) handle(_ context.Context, ev *timebox.Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.evs = append(l.evs, ev)
	return nil
}

func (l *feedLog) events() []*timebox.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*timebox.Event(nil), l.evs...)
}

func (l *feedLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.evs)
}

// waitLen waits until l holds at least n events.
func (l *feedLog) waitLen(t testing.TB, n int, what string) {
	t.Helper()
	require.NoError(t, waitFor(context.Background(), what, func() (bool, error) {
		return l.len() >= n, nil
	}))
}

// subscribe runs st.Subscribe from after until stop is called or the
// test ends.
func subscribe(
	t testing.TB, st *timebox.Store, after timebox.Position,
) (l *feedLog, stop func()) {
	l = &feedLog{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- st.Subscribe(ctx, after, l.handle) }()
	stop = sync.OnceFunc(func() {
		cancel()
		require.ErrorIs(t, <-done, context.Canceled)
	})
	t.Cleanup(stop)
	return l, stop
}

// readFeedAll reads st's whole feed after after, a page at a time.
func readFeedAll(t testing.TB, st *timebox.Store, after timebox.Position) []*timebox.Event {
	var res []*timebox.Event
	for {
		evs, err := st.ReadAll(context.Background(), after, 7)
		require.NoError(t, err)
		if len(evs) == 0 {
			return res
		}
		res = append(res, evs...)
		after = evs[len(evs)-1].Position
	}
}

// requireFeedOrder checks that evs are in strictly increasing Position
// order, and that each aggregate's events have the sequences 0, 1, 2, ...
// (from its first event's on), and returns each aggregate's count.
func requireFeedOrder(t testing.TB, evs []*timebox.Event) map[string]int64 {
	t.Helper()
	next := map[string]int64{}
	var last timebox.Position
	for i, ev := range evs {
		require.Positive(t, ev.Position.Compare(last), "event %d at %s after %s", i, ev.Position, last)
		last = ev.Position
		k := ev.AggregateID.String()
		if n, ok := next[k]; ok {
			require.Equal(t, n, ev.Sequence, "%s: sequence gap or repeat at %s", k, ev.Position)
		}
		next[k] = ev.Sequence + 1
	}
	return next
}

// A subscription on a follower sees every acknowledged event, once, in
// Position order, while appends race through every node on one aggregate
// and on many; every node's feed is the same.
func TestFeedFollowerSubscriptionUnderRace(t *testing.T) {
	c := newCluster(t, 3, clusterTuning())
	f := c.followers()[0]
	sub, _ := subscribe(t, c.store(f), timebox.Position{})

	const writers, perWriter = 6, 15
	hot := timebox.NewAggregateID("hot")
	var mu sync.Mutex
	acked, maybe := map[string]bool{}, map[string]bool{}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			st := c.store(w % len(c.nodes))
			own := timebox.NewAggregateID("own", timebox.ID(fmt.Sprint(w)))
			for j := range perWriter {
				payload := fmt.Sprintf("w%d-%d", w, j)
				var err error
				if j%2 == 0 {
					err = st.AppendEvents(own, int64(j/2), []*timebox.Event{item(payload)})
				} else {
					err = appendAtHead(st, hot, item(payload))
				}
				mu.Lock()
				switch {
				case err == nil:
					acked[fmt.Sprintf("%q", payload)] = true
				case errors.Is(err, timebox.ErrUnknownOutcome):
					maybe[fmt.Sprintf("%q", payload)] = true
				default:
					t.Error(err)
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	lead := c.leader()
	c.synced(lead)
	want := readFeedAll(t, c.store(lead), timebox.Position{})
	sub.waitLen(t, len(want), "the follower's subscription to see every event")

	got := sub.events()
	requireFeedOrder(t, got)
	require.Equal(t, positions(want), positions(got))
	seen := map[string]bool{}
	for _, ev := range got {
		require.False(t, seen[string(ev.Data)], "duplicate %s", ev.Data)
		require.True(t, acked[string(ev.Data)] || maybe[string(ev.Data)], "never written: %s", ev.Data)
		seen[string(ev.Data)] = true
	}
	for v := range acked {
		require.True(t, seen[v], "acknowledged but not in the feed: %s", v)
	}
	for i := range c.nodes {
		c.synced(i)
		all := readFeedAll(t, c.store(i), timebox.Position{})
		require.Equal(t, positions(got), positions(all), "node %d's feed", i)
	}
}

// appendAtHead appends ev to id at its head, retrying conflicts.
func appendAtHead(st *timebox.Store, id timebox.AggregateID, ev *timebox.Event) error {
	for {
		evs, err := st.GetEvents(id, 0)
		if err != nil {
			return err
		}
		err = st.AppendEvents(id, int64(len(evs)), []*timebox.Event{ev})
		if !errors.Is(err, timebox.ErrVersionConflict) {
			return err
		}
	}
}

func positions(evs []*timebox.Event) []timebox.Position {
	res := make([]timebox.Position, len(evs))
	for i, ev := range evs {
		res[i] = ev.Position
	}
	return res
}

// A follower cut off until it must install a snapshot keeps serving its
// subscription across the install without a gap: the snapshot carries the
// feed, trimmed and archived events included.
func TestFeedAcrossSnapshotInstall(t *testing.T) {
	tune := *clusterTuning()
	tune.trailingLogs = 2
	c := newSplitCluster(t, tune, false)
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitLong)
	defer cancel()
	leader, err := c.leaderOf(ctx, c.live())
	require.NoError(t, err)
	f := without(c.live(), leader)[0]
	a, b := timebox.NewAggregateID("a"), timebox.NewAggregateID("b")
	st := c.store(leader, timebox.Config{TrimEvents: true})
	sub, _ := subscribe(t, c.store(f), timebox.Position{})
	require.NoError(t, st.AppendEvents(a, 0, items("a", 2)))
	sub.waitLen(t, 2, "the follower to serve the first batch")

	c.splits[f].Cut()
	for i := range 3 {
		require.NoError(t, st.AppendEvents(a, int64(2+i), items(fmt.Sprint("a", 2+i, "-"), 1)))
		require.NoError(t, st.AppendEvents(b, int64(2*i), items(fmt.Sprint("b", i, "-"), 2)))
	}
	require.NoError(t, st.PutSnapshot(a, "a", 4)) // trims a0..a3
	require.NoError(t, st.Archive(b))
	away := c.nodes[f]
	snap, err := compactPast(ctx, c.running(without(c.live(), f)), away)
	require.NoError(t, err)
	c.splits[f].Drop()
	c.splits[f].Heal()
	require.NoError(t, waitFor(ctx, "the follower to install the snapshot", func() (bool, error) {
		return snapshotIndex(away) >= snap, nil
	}))
	require.NoError(t, st.AppendEvents(a, 5, items("last", 1)))

	want := readFeedAll(t, st, timebox.Position{})
	require.Len(t, want, 2+3+6+1)
	sub.waitLen(t, len(want), "the follower to serve every event")
	got := sub.events()
	require.Equal(t, positions(want), positions(got))
	require.Equal(t, datas(want), datas(got))
	requireFeedOrder(t, got)
}

// A follower stopped (cleanly, then as after a crash) and restarted serves
// the feed on from where its reader left off, without a gap.
func TestFeedFollowerRestart(t *testing.T) {
	c := newCluster(t, 3, clusterTuning())
	f := c.followers()[0]
	lead := c.store(c.leader())
	id := timebox.NewAggregateID("r")
	require.NoError(t, lead.AppendEvents(id, 0, items("a", 3)))
	c.synced(f)
	seen := readFeedAll(t, c.store(f), timebox.Position{})
	require.Len(t, seen, 3)

	seq := int64(3)
	for _, crash := range []bool{false, true} {
		c.stop(f)
		if crash {
			require.NoError(t, os.Remove(filepath.Join(c.cfgs[f].DataDir, cleanFile)))
		}
		require.NoError(t, lead.AppendEvents(id, seq, items(fmt.Sprint("b", seq, "-"), 2)))
		seq += 2
		c.start(f)
		waitReady(t, c.nodes[f])
		sub, stop := subscribe(t, c.store(f), seen[len(seen)-1].Position)
		sub.waitLen(t, 2, "the restarted follower to serve the new events")
		got := sub.events()
		require.Equal(t, quoted(fmt.Sprint("b", seq-2, "-"), 0, 2), datas(got[:2]))
		seen = append(seen, got...)
		requireFeedOrder(t, seen)
		stop()
	}
	c.synced(f)
	require.Equal(t, positions(readFeedAll(t, lead, timebox.Position{})),
		positions(readFeedAll(t, c.store(f), timebox.Position{})))
}

// A durable consumer run on two followers is active on one at a time; when
// the node running it stops, the other takes the lease over once it runs
// out and goes on from the checkpoint.
func TestConsumerLeaseTakeover(t *testing.T) {
	c := newCluster(t, 3, clusterTuning())
	fs := c.followers()
	lead := c.store(c.leader())
	id := timebox.NewAggregateID("t")
	require.NoError(t, lead.AppendEvents(id, 0, items("a", 10)))

	run := func(i int, owner string) (*feedLog, chan error, context.CancelFunc) {
		l := &feedLog{}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		st := c.store(i)
		go func() {
			done <- st.Consume(ctx, "tally", l.handle,
				timebox.WithOwner(owner), timebox.WithLeaseTTL(2*time.Second))
		}()
		return l, done, cancel
	}
	one, oneDone, cancelOne := run(fs[0], "one")
	defer cancelOne()
	one.waitLen(t, 10, "the first consumer to handle the history")
	two, twoDone, cancelTwo := run(fs[1], "two")
	defer cancelTwo()
	require.NoError(t, lead.AppendEvents(id, 10, items("b", 5)))
	one.waitLen(t, 15, "the first consumer to handle the new events")
	require.Zero(t, two.len(), "one consumer active at a time")

	c.stop(fs[0])
	require.ErrorIs(t, <-oneDone, timebox.ErrClosed)
	require.NoError(t, lead.AppendEvents(id, 15, items("c", 5)))
	require.NoError(t, waitFor(context.Background(), "the second consumer to take over",
		func() (bool, error) {
			evs := two.events()
			return len(evs) > 0 && string(evs[len(evs)-1].Data) == `"c4"`, nil
		}))
	all := readFeedAll(t, lead, timebox.Position{})
	got := two.events()
	requireFeedOrder(t, got)
	// At least once: the second resumes at or before the first event the
	// first consumer did not get to.
	require.LessOrEqual(t, got[0].Position.Compare(all[len(one.events())].Position), 0)
	require.Equal(t, positions(all[len(all)-len(got):]), positions(got))

	infos, err := c.store(fs[1]).Consumers(context.Background())
	require.NoError(t, err)
	require.Len(t, infos, 1)
	require.Equal(t, "two", infos[0].Partitions[0].Owner)
	cancelTwo()
	require.ErrorIs(t, <-twoDone, context.Canceled)
}

// The consumer commands' answers reach a caller on a follower, whose
// calls the leader applies: the checkpoint and epoch, and each consumer
// error.
func TestConsumerCommandsThroughFollower(t *testing.T) {
	c := newCluster(t, 3, clusterTuning())
	p := c.nodes[c.followers()[0]]
	ctx := context.Background()
	l := timebox.Lease{Consumer: "c", Partition: 1, Partitions: 2, Owner: "a", TTL: time.Minute}
	other := l
	other.Owner = "b"

	first, err := p.ClaimPartition(ctx, l)
	require.NoError(t, err)
	require.Zero(t, first.Checkpoint)
	require.NotZero(t, first.Epoch)
	_, err = p.ClaimPartition(ctx, other)
	require.ErrorIs(t, err, timebox.ErrLeaseHeld)
	mismatch := l
	mismatch.Partitions = 3
	_, err = p.ClaimPartition(ctx, mismatch)
	require.ErrorIs(t, err, timebox.ErrPartitionMismatch)

	at := timebox.Position{Commit: 7, Offset: 2}
	require.NoError(t, p.CommitPartition(ctx, l, at))
	require.ErrorIs(t, p.CommitPartition(ctx, other, at), timebox.ErrLeaseLost)
	cl, err := p.ClaimPartition(ctx, l)
	require.NoError(t, err, "renewal")
	require.Equal(t, timebox.Claim{Checkpoint: at, Epoch: first.Epoch}, cl)

	require.NoError(t, p.ReleasePartition(ctx, other), "not the holder: nothing")
	require.NoError(t, p.ReleasePartition(ctx, l))
	cl, err = p.ClaimPartition(ctx, other)
	require.NoError(t, err, "released: free at once")
	require.Equal(t, timebox.Claim{Checkpoint: at, Epoch: first.Epoch}, cl)

	infos, err := p.ListConsumers(ctx)
	require.NoError(t, err)
	require.Len(t, infos, 1)
	require.Equal(t, "c", infos[0].Name)
	require.Len(t, infos[0].Partitions, 2)
	require.Equal(t, "b", infos[0].Partitions[1].Owner)
	require.Equal(t, at, infos[0].Partitions[1].Checkpoint)
	require.Empty(t, infos[0].Partitions[0].Owner)

	require.NoError(t, p.ResetConsumer(ctx, "c", timebox.Position{Commit: 1}))
	require.ErrorIs(t, p.CommitPartition(ctx, other, at), timebox.ErrLeaseLost)
	cl, err = p.ClaimPartition(ctx, other)
	require.NoError(t, err)
	require.Equal(t, timebox.Position{Commit: 1}, cl.Checkpoint)
	require.Greater(t, cl.Epoch, first.Epoch, "a reset gives a new epoch")
	reset := cl.Epoch
	require.ErrorIs(t, p.ResetConsumer(ctx, "none", at), timebox.ErrConsumerNotFound)
	require.NoError(t, p.DeleteConsumer(ctx, "c"))
	require.ErrorIs(t, p.DeleteConsumer(ctx, "c"), timebox.ErrConsumerNotFound)
	require.ErrorIs(t, p.CommitPartition(ctx, l, at), timebox.ErrLeaseLost)

	// Every node holds the same consumers; one created again has a new
	// epoch.
	cl, err = p.ClaimPartition(ctx, l)
	require.NoError(t, err)
	require.Greater(t, cl.Epoch, reset)
	for i := range c.nodes {
		c.synced(i)
		infos, err := c.nodes[i].ListConsumers(ctx)
		require.NoError(t, err)
		require.Len(t, infos, 1)
		require.Equal(t, "a", infos[0].Partitions[1].Owner)
		var epoch uint64
		require.NoError(t, c.nodes[i].fsm.view(func(tx *bbolt.Tx) error {
			_, epoch, _ = getConsumer(tx, "c")
			return nil
		}))
		require.Equal(t, cl.Epoch, epoch, "node %d", i)
	}
}

// ReadFeed with Wait returns as soon as an append is applied, nothing
// when Wait passes, ctx's error when ctx ends, and ErrClosed at Close.
func TestReadFeedWait(t *testing.T) {
	p := newSingle(t, Config{})
	st := newStore(t, p, timebox.Config{})
	ctx := context.Background()
	evs, err := p.ReadFeed(ctx, timebox.FeedRequest{Limit: 10, Wait: 20 * time.Millisecond})
	require.NoError(t, err)
	require.Empty(t, evs)

	got := make(chan []*timebox.Event, 1)
	go func() {
		evs, err := p.ReadFeed(ctx, timebox.FeedRequest{Limit: 10, Wait: waitLong})
		assert.NoError(t, err)
		got <- evs
	}()
	require.NoError(t, st.AppendEvents(timebox.NewAggregateID("w"), 0, items("a", 2)))
	evs = <-got
	require.Equal(t, quoted("a", 0, 2), datas(evs))
	last := evs[1].Position
	require.Equal(t, evs[0].Position.Commit, last.Commit)
	require.EqualValues(t, 1, last.Offset)

	evs, err = p.ReadFeed(ctx, timebox.FeedRequest{After: evs[0].Position, Limit: 10})
	require.NoError(t, err)
	require.Equal(t, []timebox.Position{last}, positions(evs))
	evs, err = p.ReadFeed(ctx, timebox.FeedRequest{
		After: timebox.Position{Commit: last.Commit, Offset: math.MaxUint64}, Limit: 10,
	})
	require.NoError(t, err)
	require.Empty(t, evs)

	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := p.ReadFeed(cctx, timebox.FeedRequest{After: last, Limit: 10, Wait: waitLong})
		done <- err
	}()
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)

	go func() {
		_, err := p.ReadFeed(ctx, timebox.FeedRequest{After: last, Limit: 10, Wait: waitLong})
		done <- err
	}()
	require.NoError(t, p.Close())
	require.ErrorIs(t, <-done, timebox.ErrClosed)
}

// A durable consumer on a follower goes on through the loss of the
// leader: its commits and renewals go to the next leader, and it handles
// every acknowledged event in Position order (a repeat only where it
// resumed from its checkpoint).
func TestConsumerAcrossLeaderLoss(t *testing.T) {
	c := newCluster(t, 3, clusterTuning())
	old := c.leader()
	fs := c.followers()
	writer, reader := c.store(fs[0]), c.store(fs[1])
	l := &feedLog{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- reader.Consume(ctx, "through", l.handle, timebox.WithBatchSize(3))
	}()
	defer func() {
		cancel()
		require.ErrorIs(t, <-done, context.Canceled)
	}()

	id := timebox.NewAggregateID("loss")
	var acked []string
	seq := int64(0)
	write := func(n int) {
		for range n {
			v := fmt.Sprint("e", seq)
			err := writer.AppendEvents(id, seq, []*timebox.Event{item(v)})
			if errors.Is(err, timebox.ErrUnknownOutcome) {
				c.synced(fs[0])
				evs, gerr := writer.GetEvents(id, 0)
				require.NoError(t, gerr)
				if int64(len(evs)) > seq {
					err = nil // it was written
				}
			}
			if err == nil {
				acked = append(acked, fmt.Sprintf("%q", v))
				seq++
			}
		}
	}
	write(10)
	l.waitLen(t, 10, "the consumer to handle the first events")
	c.stop(old)
	write(10)
	require.NoError(t, waitFor(context.Background(), "the consumer to handle every event",
		func() (bool, error) {
			evs := l.events()
			return len(evs) > 0 && string(evs[len(evs)-1].Data) == acked[len(acked)-1], nil
		}))

	var got []*timebox.Event
	for _, ev := range l.events() {
		if len(got) > 0 && ev.Position.Compare(got[len(got)-1].Position) <= 0 {
			// Resumed from the checkpoint: a repeat of what came before.
			require.Contains(t, positions(got), ev.Position)
			continue
		}
		got = append(got, ev)
	}
	requireFeedOrder(t, got)
	require.Equal(t, acked, datas(got))
}
