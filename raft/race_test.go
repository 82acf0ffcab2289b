package raft

import (
	"testing"

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
