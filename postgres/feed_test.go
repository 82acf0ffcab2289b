package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/postgres"
)

// Many writers race, through two Persistence values on one Prefix (as two
// processes would), on one hot aggregate and on many, while a reader
// tails the feed: it must see every acknowledged event exactly once,
// positions strictly increasing, each aggregate's sequences gapless and
// in order, each event's Offset its index in its append.
func TestFeedConcurrentWritersAndTailingReader(t *testing.T) {
	const writers, appends, aggs = 8, 40, 5
	cfg := testConfig(t)
	cfg.MaxConns = 6
	stores := make([]*timebox.Store, 2)
	ps := make([]*postgres.Persistence, 2)
	for i := range stores {
		ps[i] = newPersistence(t, cfg)
		st, err := ps[i].NewStore(timebox.Config{})
		require.NoError(t, err)
		t.Cleanup(func() { _ = st.Close() })
		stores[i] = st
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	var mu sync.Mutex
	acked := map[string]bool{}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			st := stores[w%len(stores)]
			for i := range appends {
				id := timebox.NewAggregateID("agg", timebox.ID(fmt.Sprint(i%aggs)))
				if i%3 == 0 {
					id = timebox.NewAggregateID("hot")
				}
				n := 1 + i%3
				evs := make([]*timebox.Event, n)
				for k := range evs {
					evs[k] = &timebox.Event{
						Type: "e", Data: []byte(`{}`),
						ID: fmt.Sprintf("%d-%d-%d", w, i, k),
					}
				}
				require.NoError(t, appendRetry(ctx, st, id, evs))
				mu.Lock()
				for _, ev := range evs {
					acked[ev.ID] = true
				}
				mu.Unlock()
			}
		})
	}
	writersDone := make(chan struct{})
	go func() { wg.Wait(); close(writersDone) }()

	// The reader tails the feed with waiting reads until the writers are
	// done and it has every acknowledged event: an open transaction
	// elsewhere on the shared server may hold the feed back for a while.
	var got []*timebox.Event
	seen := map[string]bool{}
	var pos timebox.Position
read:
	for {
		select {
		case <-writersDone:
			mu.Lock()
			n := len(acked)
			mu.Unlock()
			if len(got) >= n {
				break read
			}
		default:
		}
		evs, err := ps[1].ReadFeed(ctx, timebox.FeedRequest{
			After: pos, Limit: 50, Wait: time.Second,
		})
		require.NoError(t, err)
		for _, ev := range evs {
			require.False(t, seen[ev.ID], "duplicate %s", ev.ID)
			seen[ev.ID] = true
			require.Equal(t, -1, pos.Compare(ev.Position), "%s after %s", ev.Position, pos)
			pos = ev.Position
			got = append(got, ev)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, got, len(acked))
	for id := range acked {
		require.True(t, seen[id], "acknowledged %s not in the feed", id)
	}
	next := map[string]int64{}
	var batchStart timebox.Position
	for _, ev := range got {
		key := ev.AggregateID.String()
		require.Equal(t, next[key], ev.Sequence, "%s", key)
		next[key]++
		if ev.Position.Offset == 0 {
			batchStart = ev.Position
		}
		require.Equal(t, batchStart.Commit, ev.Position.Commit)
	}
}

// appendRetry appends evs at id's head, reading the head again after each
// conflict.
func appendRetry(
	ctx context.Context, st *timebox.Store, id timebox.AggregateID,
	evs []*timebox.Event,
) error {
	var head int64
	for ctx.Err() == nil {
		err := st.AppendEventsContext(ctx, id, head, evs)
		var c *timebox.VersionConflictError
		if !errors.As(err, &c) {
			return err
		}
		head = c.ActualSequence
	}
	return ctx.Err()
}

// Processes creating one consumer at once with different partition
// counts agree on one: the claims with that count succeed or find the
// lease held, the others get ErrPartitionMismatch, and the consumer has
// exactly that many partitions.
func TestConsumerConcurrentCreation(t *testing.T) {
	cfg := testConfig(t)
	ps := []*postgres.Persistence{newPersistence(t, cfg), newPersistence(t, cfg)}
	ctx := context.Background()
	const claims = 8
	counts := make([]int, claims)
	errs := make([]error, claims)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range claims {
		counts[i] = 2 + i%3
		wg.Go(func() {
			<-start
			_, errs[i] = ps[i%2].ClaimPartition(ctx, timebox.Lease{
				Consumer: "c", Partition: 1, Partitions: counts[i],
				Owner: fmt.Sprint("owner-", i), TTL: time.Minute,
			})
		})
	}
	close(start)
	wg.Wait()
	list, err := ps[0].ListConsumers(ctx)
	require.NoError(t, err)
	require.Len(t, list, 1)
	won := len(list[0].Partitions)
	granted := 0
	for i, err := range errs {
		switch {
		case counts[i] != won:
			require.ErrorIs(t, err, timebox.ErrPartitionMismatch, "claim %d", i)
		case err == nil:
			granted++
		default:
			require.ErrorIs(t, err, timebox.ErrLeaseHeld, "claim %d", i)
		}
	}
	require.Equal(t, 1, granted)
	for i, part := range list[0].Partitions {
		require.Equal(t, i, part.Partition)
	}
}
