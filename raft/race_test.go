package raft

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/conformance"
)

// TestRaceExecAcrossNodes races Exec on one aggregate through every node
// and checks the exact log on each.
func TestRaceExecAcrossNodes(t *testing.T) {
	c := newCluster(t, 3, clusterTuning())
	stores := make([]*timebox.Store, len(c.nodes))
	for i := range c.nodes {
		stores[i] = c.store(i, timebox.Config{MaxRetries: 1000})
	}
	conformance.RaceExec(t, stores, 4, 10)
}

// TestRaceExecThroughFailover races Exec through both followers while the
// leader is closed: writes caught by the change may end with
// ErrUnknownOutcome, but every acknowledged one is in the log, once, on
// both nodes.
func TestRaceExecThroughFailover(t *testing.T) {
	c := newCluster(t, 3, clusterTuning())
	leader := c.leader()
	watch := c.store(leader)
	fs := c.followers()
	stores := []*timebox.Store{
		c.store(fs[0], timebox.Config{MaxRetries: 1000}),
		c.store(fs[1], timebox.Config{MaxRetries: 1000}),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Close the leader once the race is under way.
		for {
			ids, err := watch.ListAggregates(timebox.NewAggregateID("race"))
			if err != nil {
				return
			}
			if len(ids) > 0 {
				evs, err := watch.GetEvents(ids[0], 0)
				if err == nil && len(evs) >= 5 {
					break
				}
			}
			time.Sleep(time.Millisecond)
		}
		_ = c.nodes[leader].Close()
	}()
	conformance.RaceExec(t, stores, 4, 15)
	<-done
	require.True(t, c.nodes[leader].closed.Load(), "the leader was closed")
	c.nodes[leader] = nil
	require.NotEqual(t, leader, c.leader(), "a new leader took over")
}
