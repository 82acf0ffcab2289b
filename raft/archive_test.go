package raft

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.etcd.io/bbolt"

	"github.com/kode4food/timebox"
)

// archiveLeaseTest is the lease of the archive tests: short, so a dead
// consumer's record comes back soon, and long enough that a live handler
// on a loaded machine is not overtaken.
const archiveLeaseTest = 2 * time.Second

// archivedCount returns how many archive records node p holds, leased or
// not.
func archivedCount(t *testing.T, p *Persistence) int {
	n := 0
	require.NoError(t, p.fsm.view(func(tx *bbolt.Tx) error {
		n = tx.Bucket(bucketArchive).Stats().KeyN
		return nil
	}))
	return n
}

// Consumers on every node of a 3-node cluster share the archive: each of
// M records archived through the nodes is handled at least once; a record
// whose consumer's node dies in the handler is delivered again once its
// lease ends; once consumed, no node holds a record (an acknowledgement
// on one node removes the record on all).
func TestArchiveAcrossNodes(t *testing.T) {
	c := startClusterWith(t, 3, clusterTuning(), Config{ArchiveLease: archiveLeaseTest}, false)
	const records = 12
	var ids []timebox.AggregateID
	for i := range records {
		id := timebox.NewAggregateID("order", timebox.ID(fmt.Sprint(i)))
		ids = append(ids, id)
		st := c.store(i % 3)
		require.NoError(t, st.AppendEvents(id, 0, items(fmt.Sprint("o", i, "-"), 2)))
		require.NoError(t, st.Archive(id))
	}

	// A consumer on node 0 takes a record, and node 0 dies in the handler.
	victim := 0
	var crashed timebox.AggregateID
	inHandler, crash := make(chan struct{}), make(chan struct{})
	victimDone := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		defer cancel()
		victimDone <- c.store(victim).ConsumeArchive(ctx,
			func(_ context.Context, r *timebox.ArchiveRecord) error {
				crashed = r.AggregateID
				close(inHandler)
				<-crash
				return nil
			})
	}()
	select {
	case <-inHandler:
	case <-time.After(waitLong):
		t.Fatalf("the consumer on node %d got no record in %s", victim, waitLong)
	}
	c.stop(victim)
	close(crash)
	require.ErrorIs(t, <-victimDone, timebox.ErrClosed, "its acknowledgement cannot be sent")

	// Consumers on the other two nodes handle every record, the crashed
	// one included, once its lease has run out.
	var mu sync.Mutex
	handled := map[string]int{}
	done := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(handled) == records
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitLong)
	defer cancel()
	var wg sync.WaitGroup
	for _, n := range []int{1, 2} {
		st := c.store(n)
		for range 2 {
			wg.Go(func() {
				for !done() && ctx.Err() == nil {
					wctx, wcancel := context.WithTimeout(ctx, 200*time.Millisecond)
					err := st.ConsumeArchive(wctx, func(_ context.Context, r *timebox.ArchiveRecord) error {
						if len(r.Events) != 2 {
							t.Errorf("record %s has %d events", r.AggregateID, len(r.Events))
						}
						mu.Lock()
						defer mu.Unlock()
						handled[r.AggregateID.String()]++
						return nil
					})
					wcancel()
					switch {
					case err == nil, errors.Is(err, context.DeadlineExceeded):
					case errors.Is(err, timebox.ErrUnknownOutcome), errors.Is(err, ErrNoLeader):
						// Node 0 may have led: an acknowledgement lost
						// with it leaves the record to be redelivered.
						t.Logf("consumer on node %d: %v", n, err)
					default:
						t.Error(err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	require.NoError(t, ctx.Err(), "every record handled in time")
	for _, id := range ids {
		require.GreaterOrEqual(t, handled[id.String()], 1, "record %s handled", id)
	}
	require.NotEmpty(t, crashed.String())
	t.Logf("deliveries: %v (crashed consumer's record %s)", handled, crashed)

	for _, n := range []int{1, 2} {
		c.synced(n)
		require.Zero(t, archivedCount(t, c.nodes[n]), "node %d holds no record", n)
	}
	// The dead node comes back and holds none either.
	c.start(victim)
	waitReady(t, c.nodes[victim])
	c.synced(victim)
	require.Zero(t, archivedCount(t, c.nodes[victim]))
}

// TestMalformedArchiveRecordIsDropped: a record that does not decode (here
// its state file entry cut short) fails one ConsumeArchive with
// ErrArchiveRecordMalformed and is out of the way: the next call gets the
// record behind it, and no call gets the malformed one again.
func TestMalformedArchiveRecordIsDropped(t *testing.T) {
	p := newSingle(t, Config{})
	s := newStore(t, p, timebox.Config{})
	bad, good := timebox.NewAggregateID("bad"), timebox.NewAggregateID("good")
	for _, id := range []timebox.AggregateID{bad, good} {
		require.NoError(t, s.AppendEvents(id, 0, items("a", 1)))
		require.NoError(t, s.Archive(id))
	}
	require.NoError(t, p.fsm.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketArchive)
		k, v := b.Cursor().First()
		require.NotNil(t, k)
		return b.Put(k, append([]byte(nil), v[:len(v)-1]...))
	}))

	consume := func() (*timebox.ArchiveRecord, error) {
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		defer cancel()
		var got *timebox.ArchiveRecord
		err := s.ConsumeArchive(ctx, func(_ context.Context, r *timebox.ArchiveRecord) error {
			got = r
			return nil
		})
		return got, err
	}
	_, err := consume()
	require.ErrorIs(t, err, timebox.ErrArchiveRecordMalformed)
	rec, err := consume()
	require.NoError(t, err)
	require.True(t, good.Equal(rec.AggregateID), "got %v", rec.AggregateID)

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err = s.ConsumeArchive(ctx, func(context.Context, *timebox.ArchiveRecord) error {
		t.Error("a record was delivered again")
		return nil
	})
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

// TestArchiveConsumeAcrossLeaderLoss: ConsumeArchive asks for its lease
// through a leader that is cut off right then, so the request's outcome
// is unknown and it was never applied. Once a leader serves the cluster
// again the record is free, and ConsumeArchive must hand it over without
// another write to wake it: it once waited for the state to change,
// which in a quiet cluster it never did. The consumer runs on the cut
// leader itself, and on a follower whose request the leader had taken.
func TestArchiveConsumeAcrossLeaderLoss(t *testing.T) {
	for _, onLeader := range []bool{true, false} {
		t.Run(fmt.Sprintf("on leader %v", onLeader), func(t *testing.T) {
			c := newSplitCluster(t, *clusterTuning(), false)
			ctx, cancel := context.WithTimeout(context.Background(), 3*waitLong)
			defer cancel()
			leader, err := c.leaderOf(ctx, c.live())
			require.NoError(t, err)
			others := without(c.live(), leader)
			at := leader
			if !onLeader {
				at = others[0]
			}
			st := c.store(at)
			id := timebox.NewAggregateID("arch", "1")
			require.NoError(t, st.AppendEvents(id, 0, items("a", 2)))
			require.NoError(t, st.Archive(id))
			for i := range c.nodes {
				c.synced(i)
				require.Equal(t, 1, archivedCount(t, c.nodes[i]))
			}

			c.splits[leader].Cut()
			if onLeader {
				c.splits[leader].Drop()
			}
			done := make(chan error, 1)
			var handled []timebox.AggregateID
			go func() {
				done <- st.ConsumeArchive(ctx, func(_ context.Context, r *timebox.ArchiveRecord) error {
					handled = append(handled, r.AggregateID)
					return nil
				})
			}()
			_, err = c.leaderOf(ctx, others)
			require.NoError(t, err)
			if onLeader {
				require.NoError(t, waitFor(ctx, "the cut leader to step down", func() (bool, error) {
					return c.nodes[leader].State() != Leader, nil
				}))
			} else {
				// The old leader crashes, and its connections with it.
				c.splits[leader].Drop()
				require.NoError(t, c.kill(leader))
			}
			c.splits[leader].Heal()
			_, err = c.leaderOf(ctx, c.live())
			require.NoError(t, err)
			require.NoError(t, <-done)
			require.Equal(t, []timebox.AggregateID{id}, handled)
		})
	}
}
