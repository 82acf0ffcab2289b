package raft

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
)

// cluster is a loopback cluster whose nodes can be stopped and restarted
// from their data directories.
type cluster struct {
	t     testing.TB
	cfgs  []Config
	nodes []*Persistence
	pubs  []*pubLog
}

// pubLog records what a node's Publisher was given.
type pubLog struct {
	mu      sync.Mutex
	batches [][]*timebox.Event
}

func (l *pubLog) publish(evs ...*timebox.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.batches = append(l.batches, evs)
}

// payloads returns the Data of every published event, in order.
func (l *pubLog) payloads() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var res []string
	for _, b := range l.batches {
		for _, ev := range b {
			res = append(res, string(ev.Data))
		}
	}
	return res
}

// newCluster configures n nodes sharing one Servers list, each recording
// what its Publisher is given, and starts those not listed in skip.
func newCluster(t testing.TB, n int, tune *tuning, skip ...int) *cluster {
	return startCluster(t, n, tune, true, skip...)
}

func startCluster(t testing.TB, n int, tune *tuning, publish bool, skip ...int) *cluster {
	return startClusterWith(t, n, tune, Config{}, publish, skip...)
}

// startClusterWith is startCluster with base laid under each node's
// Config.
func startClusterWith(
	t testing.TB, n int, tune *tuning, base Config, publish bool, skip ...int,
) *cluster {
	c := &cluster{t: t}
	var servers []Server
	for i := range n {
		servers = append(servers, Server{ID: fmt.Sprintf("n%d", i), Address: freeAddr(t)})
	}
	for i := range n {
		log := &pubLog{}
		c.pubs = append(c.pubs, log)
		cfg := base.With(Config{
			LocalID: servers[i].ID,
			Address: servers[i].Address,
			DataDir: t.TempDir(),
			Servers: servers,
			tuning:  tune,
		})
		if publish {
			cfg.Publisher = log.publish
		}
		c.cfgs = append(c.cfgs, cfg)
	}
	c.nodes = make([]*Persistence, n)
	t.Cleanup(c.closeAll)
	for i := range n {
		if !contains(skip, i) {
			c.start(i)
		}
	}
	for i := range n {
		if !contains(skip, i) {
			waitReady(t, c.nodes[i])
		}
	}
	return c
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func (c *cluster) closeAll() {
	for i := range c.nodes {
		c.stop(i)
	}
}

// start opens node i from its data directory.
func (c *cluster) start(i int) *Persistence {
	p, err := NewPersistence(c.cfgs[i])
	require.NoError(c.t, err)
	c.nodes[i] = p
	return p
}

func (c *cluster) stop(i int) {
	if c.nodes[i] != nil {
		require.NoError(c.t, c.nodes[i].Close())
		c.nodes[i] = nil
	}
}

// leader waits until the live nodes agree on a leader and returns it.
func (c *cluster) leader() int {
	res := -1
	require.Eventually(c.t, func() bool {
		res = -1
		for i, p := range c.nodes {
			if p != nil && p.State() == Leader {
				res = i
			}
		}
		if res < 0 {
			return false
		}
		for _, p := range c.nodes {
			if p != nil && p.Leader().ID != c.cfgs[res].LocalID {
				return false
			}
		}
		return true
	}, waitLong, 10*time.Millisecond)
	return res
}

// followers returns the live nodes other than the leader.
func (c *cluster) followers() []int {
	l := c.leader()
	var res []int
	for i, p := range c.nodes {
		if p != nil && i != l {
			res = append(res, i)
		}
	}
	return res
}

// store returns a Store on node i; closing the node closes it.
func (c *cluster) store(i int, cfg ...timebox.Config) *timebox.Store {
	return newStore(c.t, c.nodes[i], timebox.Configure(timebox.Config{}, cfg...))
}

// synced waits until node i has applied everything committed so far, by
// way of an empty append.
func (c *cluster) synced(i int) {
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	err := c.nodes[i].Append(ctx, timebox.AppendRequest{ID: timebox.NewAggregateID("sync")})
	require.NoError(c.t, err)
}

func item(v string) *timebox.Event {
	return &timebox.Event{
		Timestamp: time.Unix(1700000000, 0).UTC(),
		Type:      "item",
		Data:      []byte(fmt.Sprintf("%q", v)),
	}
}

func items(prefix string, n int) []*timebox.Event {
	res := make([]*timebox.Event, n)
	for i := range res {
		res[i] = item(fmt.Sprintf("%s%d", prefix, i))
	}
	return res
}

func datas(evs []*timebox.Event) []string {
	res := make([]string, len(evs))
	for i, ev := range evs {
		res[i] = string(ev.Data)
	}
	return res
}

func quoted(prefix string, from, to int) []string {
	var res []string
	for i := from; i < to; i++ {
		res = append(res, fmt.Sprintf("%q", fmt.Sprintf("%s%d", prefix, i)))
	}
	return res
}

func TestFollowerWritesAndReadsOwnWrite(t *testing.T) {
	c := newCluster(t, 3, clusterTuning())
	f := c.followers()[0]
	st := c.store(f)
	id := timebox.NewAggregateID("order", "1")

	for i := range 5 {
		require.NoError(t, st.AppendEvents(id, int64(i), []*timebox.Event{item(fmt.Sprint("a", i))}))
		evs, err := st.GetEvents(id, 0)
		require.NoError(t, err)
		require.Len(t, evs, i+1, "follower must read its own write at once")
	}

	err := st.AppendEvents(id, 2, items("late", 1))
	var conflict *timebox.VersionConflictError
	require.ErrorAs(t, err, &conflict)
	require.EqualValues(t, 5, conflict.ActualSequence)
	require.Equal(t, quoted("a", 2, 5), datas(conflict.NewEvents))
	require.Equal(t, id, conflict.NewEvents[0].AggregateID)

	require.NoError(t, st.AppendEvents(id, 5, nil))
	require.ErrorIs(t, st.AppendEvents(id, 4, nil), timebox.ErrVersionConflict)

	require.NoError(t, st.PutSnapshot(id, map[string]int{"n": 5}, 5))
	var snap map[string]int
	res, err := st.GetSnapshot(id, &snap)
	require.NoError(t, err)
	require.EqualValues(t, 5, res.NextSequence)
	require.Equal(t, 5, snap["n"])

	for i := range c.nodes {
		c.synced(i)
		evs, err := c.store(i).GetEvents(id, 0)
		require.NoError(t, err)
		require.Equal(t, quoted("a", 0, 5), datas(evs))
	}
}

type counter struct{ N int }

var counterAppliers = timebox.Appliers[counter]{
	"inc": func(c counter, _ *timebox.Event) counter {
		c.N++
		return c
	},
}

func inc(_ counter, ag *timebox.Aggregator[counter]) error {
	return timebox.Raise(ag, "inc", struct{}{})
}

func TestExecThroughFollowers(t *testing.T) {
	c := newCluster(t, 3, clusterTuning())
	id := timebox.NewAggregateID("counter")
	total := 0
	for _, i := range c.followers() {
		ex := timebox.NewExecutor(c.store(i), func() counter { return counter{} }, counterAppliers)
		for range 3 {
			total++
			s, err := ex.Exec(id, inc)
			require.NoError(t, err)
			require.Equal(t, total, s.N)
		}
		s, err := ex.Exec(id, noop)
		require.NoError(t, err)
		require.Equal(t, total, s.N)
	}

	// A command that raises nothing decides on the leader's latest state,
	// even on a follower that has not heard of the last write yet.
	lead := timebox.NewExecutor(c.store(c.leader()), func() counter { return counter{} }, counterAppliers)
	for round := range 5 {
		_, err := lead.Exec(id, inc)
		require.NoError(t, err)
		total++
		f := c.followers()[round%2]
		ex := timebox.NewExecutor(c.store(f), func() counter { return counter{} }, counterAppliers)
		s, err := ex.Exec(id, noop)
		require.NoError(t, err)
		require.Equal(t, total, s.N)
		require.NoError(t, c.store(c.followers()[(round+1)%2]).AppendEvents(id, int64(total), nil))
	}
}

func noop(counter, *timebox.Aggregator[counter]) error { return nil }

func TestLeaderLossKeepsWriting(t *testing.T) {
	c := newCluster(t, 3, clusterTuning())
	id := timebox.NewAggregateID("order", "1")
	old := c.leader()
	require.NoError(t, c.store(c.followers()[0]).AppendEvents(id, 0, items("a", 1)))

	c.stop(old)
	next := c.leader()
	require.NotEqual(t, old, next)
	seq := int64(1)
	for i, p := range c.nodes {
		if p == nil {
			continue
		}
		require.NoError(t, c.store(i).AppendEvents(id, seq, []*timebox.Event{item(fmt.Sprint("b", i))}))
		seq++
	}
	for i, p := range c.nodes {
		if p == nil {
			continue
		}
		c.synced(i)
		evs, err := c.store(i).GetEvents(id, 0)
		require.NoError(t, err)
		require.Len(t, evs, int(seq))
	}

	// The old leader comes back as a follower with everything.
	c.start(old)
	waitReady(t, c.nodes[old])
	c.synced(old)
	evs, err := c.store(old).GetEvents(id, 0)
	require.NoError(t, err)
	require.Len(t, evs, int(seq))
}

func statusIndexer(evs []*timebox.Event) []*timebox.Index {
	s := string(evs[len(evs)-1].Type)
	return []*timebox.Index{{Status: &s, Labels: map[string]string{"kind": s}}}
}

func TestRestartKeepsState(t *testing.T) {
	c := newCluster(t, 3, clusterTuning())
	cfg := timebox.Config{Indexer: statusIndexer, TrimEvents: true}
	f := c.followers()[0]
	st := c.store(f, cfg)
	a, b := timebox.NewAggregateID("a"), timebox.NewAggregateID("b")
	require.NoError(t, st.AppendEvents(a, 0, items("a", 4)))
	require.NoError(t, st.AppendEvents(b, 0, items("b", 2)))
	require.NoError(t, st.PutSnapshot(a, []string{"a0", "a1"}, 2))

	for _, i := range []int{f, c.leader()} {
		c.synced(i)
		published := len(c.pubs[i].payloads())
		c.stop(i)
		c.start(i)
		waitReady(t, c.nodes[i])
		c.synced(i)
		require.Len(t, c.pubs[i].payloads(), published, "no publishing on replay")
		st := c.store(i, cfg)
		evs, err := st.GetEvents(a, 0)
		require.NoError(t, err)
		require.Equal(t, quoted("a", 2, 4), datas(evs), "trimmed log survives restart")
		var snap []string
		res, err := st.GetSnapshot(a, &snap)
		require.NoError(t, err)
		require.Equal(t, []string{"a0", "a1"}, snap)
		require.EqualValues(t, 2, res.NextSequence)
		status, err := st.GetAggregateStatus(b)
		require.NoError(t, err)
		require.Equal(t, "item", status)
		ids, err := st.ListAggregatesByLabel("kind", "item")
		require.NoError(t, err)
		require.Equal(t, []timebox.AggregateID{a, b}, ids)
		// Nothing was applied twice: appends go on at the head.
		evs, err = st.GetEvents(b, 0)
		require.NoError(t, err)
		require.NoError(t, st.AppendEvents(b, int64(len(evs)), items("c", 1)))
	}
}

// A follower forwards an IfHead snapshot to the leader and passes on its
// outcome: ErrSnapshotSkipped when nothing was stored, nil when stored.
func TestFollowerSnapshotSkipped(t *testing.T) {
	c := startCluster(t, 3, clusterTuning(), false)
	f := c.nodes[c.followers()[0]]
	ctx := context.Background()
	id := timebox.NewAggregateID("order", "1")
	req := timebox.SnapshotRequest{ID: id, Data: []byte(`"s"`), Sequence: 1, IfHead: true}
	require.ErrorIs(t, f.SaveSnapshot(ctx, req), timebox.ErrSnapshotSkipped)
	require.NoError(t, f.Append(ctx, timebox.AppendRequest{ID: id, Events: []*timebox.Event{{
		AggregateID: id, Type: "a", Data: []byte(`1`), Timestamp: time.Now().UTC(),
	}}}))
	require.NoError(t, f.SaveSnapshot(ctx, req))
	rec, err := f.LoadSnapshot(ctx, id)
	require.NoError(t, err)
	require.EqualValues(t, 1, rec.Sequence)
}
