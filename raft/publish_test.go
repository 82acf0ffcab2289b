package raft

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
)

// TestPublisherOrderAndOnce writes through every node at once and checks
// that each node published every committed batch once, in the same
// (commit) order.
func TestPublisherOrderAndOnce(t *testing.T) {
	c := newCluster(t, 3, clusterTuning())
	const batches = 10
	var wg sync.WaitGroup
	for i := range c.nodes {
		wg.Go(func() {
			st := c.store(i)
			id := timebox.NewAggregateID("node", timebox.ID(fmt.Sprint(i)))
			for j := range batches {
				evs := items(fmt.Sprintf("n%d-b%d-", i, j), 2)
				if err := st.AppendEvents(id, int64(2*j), evs); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	var want []string
	for i := range c.nodes {
		for j := range batches {
			want = append(want, quoted(fmt.Sprintf("n%d-b%d-", i, j), 0, 2)...)
		}
	}
	slices.Sort(want)
	var first []string
	for i := range c.nodes {
		c.synced(i)
		require.Eventually(t, func() bool {
			return len(c.pubs[i].payloads()) >= len(want)
		}, waitLong, 5*time.Millisecond)
		got := c.pubs[i].payloads()
		if first == nil {
			first = got
		}
		require.Equal(t, first, got, "node %d published in another order", i)
		sorted := slices.Clone(got)
		slices.Sort(sorted)
		require.Equal(t, want, sorted, "node %d published each event once", i)
	}
}

func TestPublisherSlowDoesNotStall(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var got []string
	p := newSingle(t, Config{Publisher: func(evs ...*timebox.Event) {
		<-release
		mu.Lock()
		defer mu.Unlock()
		got = append(got, datas(evs)...)
	}})
	st := newStore(t, p, timebox.Config{})
	id := timebox.NewAggregateID("slow")
	for i := range 20 {
		require.NoError(t, st.AppendEvents(id, int64(i), []*timebox.Event{item(fmt.Sprint("e", i))}))
	}
	close(release)
	require.NoError(t, p.Close())
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, quoted("e", 0, 20), got, "Close delivers what is queued")
}

// A follower cut off after Ready catches up by installing a snapshot:
// it publishes what the snapshot added, each aggregate's new events in
// sequence order and none twice, then goes on publishing new commits.
func TestPublisherAfterSnapshotInstall(t *testing.T) {
	tune := *clusterTuning()
	tune.trailingLogs = 2
	c := newSplitCluster(t, tune, true)
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitLong)
	defer cancel()
	leader, err := c.leaderOf(ctx, c.live())
	require.NoError(t, err)
	f := without(c.live(), leader)[0]
	a, b := timebox.NewAggregateID("a"), timebox.NewAggregateID("b")
	st := c.store(leader)
	require.NoError(t, st.AppendEvents(a, 0, items("a", 2)))
	require.NoError(t, waitFor(ctx, "the follower to publish the first batch", func() (bool, error) {
		return len(c.pubs[f].payloads()) == 2, nil
	}))

	c.splits[f].Cut()
	for i := range 3 {
		require.NoError(t, st.AppendEvents(a, int64(2+i), items(fmt.Sprint("a", 2+i, "-"), 1)))
		require.NoError(t, st.AppendEvents(b, int64(2*i), items(fmt.Sprint("b", i, "-"), 2)))
	}
	away := c.nodes[f]
	snap, err := compactPast(ctx, c.running(without(c.live(), f)), away)
	require.NoError(t, err)
	c.splits[f].Drop()
	c.splits[f].Heal()
	require.NoError(t, waitFor(ctx, "the follower to install the snapshot", func() (bool, error) {
		return snapshotIndex(away) >= snap, nil
	}))
	require.NoError(t, st.AppendEvents(a, 5, items("last", 1)))

	want := append(quoted("a", 0, 2), `"a2-0"`, `"a3-0"`, `"a4-0"`, `"last0"`)
	wantB := []string{`"b0-0"`, `"b0-1"`, `"b1-0"`, `"b1-1"`, `"b2-0"`, `"b2-1"`}
	require.NoError(t, waitFor(ctx, "the follower to publish every event", func() (bool, error) {
		return len(c.pubs[f].payloads()) == len(want)+len(wantB), nil
	}))
	var gotA, gotB []string
	for _, p := range c.pubs[f].payloads() {
		if strings.HasPrefix(p, `"b`) {
			gotB = append(gotB, p)
		} else {
			gotA = append(gotA, p)
		}
	}
	require.Equal(t, want, gotA, "a's events once each, in sequence order")
	require.Equal(t, wantB, gotB, "b's events once each, in sequence order")
	got := c.pubs[f].payloads()
	require.Equal(t, `"last0"`, got[len(got)-1], "commits after the snapshot come after it")
}
