package raft

import (
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
)

func TestLateJoinerCatchesUpFromLog(t *testing.T) {
	c := newCluster(t, 3, clusterTuning(), 2)
	id := timebox.NewAggregateID("order", "1")
	require.NoError(t, c.store(c.leader()).AppendEvents(id, 0, items("a", 5)))

	late := c.start(2)
	waitReady(t, late)
	evs, err := c.store(2).GetEvents(id, 0)
	require.NoError(t, err)
	require.Equal(t, quoted("a", 0, 5), datas(evs), "Ready means caught up")
	require.Empty(t, c.pubs[2].payloads(), "nothing published while catching up")

	require.NoError(t, c.store(2).AppendEvents(id, 5, items("b", 1)))
	require.Eventually(t, func() bool {
		return len(c.pubs[2].payloads()) == 1
	}, waitLong, 5*time.Millisecond)
	require.Equal(t, quoted("b", 0, 1), c.pubs[2].payloads())
}

func TestLateJoinerCatchesUpFromSnapshot(t *testing.T) {
	tune := clusterTuning()
	tune.trailingLogs = 2
	tune.snapshotThreshold = 4
	c := newCluster(t, 3, tune, 2)
	id := timebox.NewAggregateID("order", "1")
	st := c.store(c.leader(), timebox.Config{Indexer: statusIndexer})
	for i := range 20 {
		require.NoError(t, st.AppendEvents(id, int64(i), items("a"+strconv.Itoa(i)+"-", 1)))
	}
	for _, i := range []int{0, 1} {
		c.synced(i)
		require.NoError(t, c.nodes[i].raft.Snapshot().Error())
	}
	first, err := c.nodes[c.leader()].store.FirstIndex()
	require.NoError(t, err)
	require.Greater(t, first, uint64(5), "the leader compacted its log")

	late := c.start(2)
	waitReady(t, late)
	require.Eventually(t, func() bool {
		return late.raft.Stats()["last_snapshot_index"] != "0"
	}, waitLong, 5*time.Millisecond, "the late node installed a snapshot")
	evs, err := c.store(2).GetEvents(id, 0)
	require.NoError(t, err)
	require.Len(t, evs, 20)
	status, err := c.store(2).GetAggregateStatus(id)
	require.NoError(t, err)
	require.Equal(t, "item", status)
	require.Empty(t, c.pubs[2].payloads())

	// The restored node restarts from its own state and goes on.
	c.stop(2)
	c.start(2)
	waitReady(t, c.nodes[2])
	require.NoError(t, c.store(2).AppendEvents(id, 20, items("b", 1)))
	evs, err = c.store(2).GetEvents(id, 0)
	require.NoError(t, err)
	require.Len(t, evs, 21)
}

// deadPeer accepts connections and closes them at once.
func deadPeer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
	})
	return ln.Addr().String()
}

func TestDeadPeerDoesNotStopMajority(t *testing.T) {
	tune := clusterTuning()
	c := &cluster{t: t}
	servers := []Server{
		{ID: "n0", Address: freeAddr(t)},
		{ID: "n1", Address: freeAddr(t)},
		{ID: "n2", Address: deadPeer(t)},
	}
	for i := range 2 {
		c.pubs = append(c.pubs, &pubLog{})
		c.cfgs = append(c.cfgs, Config{
			LocalID: servers[i].ID, Address: servers[i].Address,
			DataDir: t.TempDir(), Servers: servers, tuning: tune,
		})
	}
	c.nodes = make([]*Persistence, 2)
	t.Cleanup(c.closeAll)
	c.start(0)
	c.start(1)
	waitReady(t, c.nodes[0])
	waitReady(t, c.nodes[1])

	id := timebox.NewAggregateID("order", "1")
	for i := range 6 {
		require.NoError(t, c.store(i%2).AppendEvents(id, int64(i), items("x"+strconv.Itoa(i), 1)))
	}
	for i := range 2 {
		c.synced(i)
		evs, err := c.store(i).GetEvents(id, 0)
		require.NoError(t, err)
		require.Len(t, evs, 6)
	}
}
