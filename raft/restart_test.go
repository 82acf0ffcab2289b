package raft

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
)

// TestUncleanStateIsRebuilt restarts a node whose state file was not
// closed cleanly (as after a crash): the file is rebuilt from the Raft
// snapshot and log, with nothing lost, nothing applied twice and nothing
// published again.
func TestUncleanStateIsRebuilt(t *testing.T) {
	var mu sync.Mutex
	published := 0
	cfg := Config{
		LocalID: "solo", Address: "127.0.0.1:0", DataDir: t.TempDir(),
		Publisher: func(evs ...*timebox.Event) {
			mu.Lock()
			defer mu.Unlock()
			published += len(evs)
		},
	}
	p := newSingle(t, cfg)
	st := newStore(t, p, timebox.Config{Indexer: statusIndexer})
	id := timebox.NewAggregateID("order", "1")
	require.NoError(t, st.AppendEvents(id, 0, items("a", 3)))
	require.NoError(t, p.raft.Snapshot().Error())
	require.NoError(t, st.AppendEvents(id, 3, items("b", 2)))
	require.NoError(t, p.Close())

	for _, crash := range []bool{true, false} {
		if crash {
			require.NoError(t, os.Remove(filepath.Join(cfg.DataDir, cleanFile)))
		}
		p = newSingle(t, cfg)
		st = newStore(t, p, timebox.Config{Indexer: statusIndexer})
		evs, err := st.GetEvents(id, 0)
		require.NoError(t, err)
		require.Equal(t, append(quoted("a", 0, 3), quoted("b", 0, 2)...), datas(evs))
		status, err := st.GetAggregateStatus(id)
		require.NoError(t, err)
		require.Equal(t, "item", status)
		require.NoError(t, p.Close())
	}
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, 5, published)
}
