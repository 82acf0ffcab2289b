package raft

import (
	"fmt"
	"slices"
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
