package raft

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
	"go.etcd.io/bbolt"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/codec"
	"github.com/kode4food/timebox/internal/history"
)

// The chaos scenarios run a concurrent workload on a few hot aggregates
// through every node of a 3-node loopback cluster while a node is killed,
// cut off the network, or kept away until the leader compacts its log;
// then they require that no acknowledged event is lost, none is written
// twice, no gap opens, the history is linearizable, the cluster wrote
// again on its own, and every node holds the same Raft log and the same
// state (compared by a digest of the state machine). Each scenario runs an
// Exec and a raw-append workload at once against the same fault
// (history.RunChaos). By default a scenario takes a few seconds;
// TIMEBOX_CHAOS=1 makes each last a minute or more.
//
// The workload's stores stand for the processes using the nodes: each
// sees the node currently running in its slot (nodeBackend), so a node
// restarted from its DataDir serves the same store, and a stopped node's
// store fails calls with ErrClosed meanwhile. Live nodes keep their
// Persistence and their store throughout.
//
// Reads on a node are local and may trail writes acknowledged through
// other nodes (see DESIGN.md), which a linearizability check would rightly
// reject; the stores therefore read events the way DESIGN.md says a
// caller gets an up-to-date read: after catching up with the leader's
// commit index (what an empty append does).

// chaosNodes is the size of the chaos clusters.
const chaosNodes = 3

// chaosPlan is history.NewPlan with a short plan long enough for an
// election (a few seconds), so `make test` sees leaders change.
func chaosPlan() history.Plan {
	plan := history.NewPlan()
	if !plan.Long {
		plan.Duration = 3 * time.Second
		plan.Window = 1500 * time.Millisecond
	}
	return plan
}

// chaosTuning elects a new leader within a second or so; the scenarios
// tolerate the spurious elections a loaded machine may cause.
func chaosTuning() tuning {
	t := defaultTuning()
	t.heartbeatTimeout = 400 * time.Millisecond
	t.electionTimeout = 400 * time.Millisecond
	t.leaderLeaseTimeout = 200 * time.Millisecond
	t.dialTimeout = 500 * time.Millisecond
	t.leaderWait = waitLong
	return t
}

// chaosCluster is a cluster whose nodes each sit behind a netSplit and in
// a slot that the workload's stores follow across restarts. Only the
// fault goroutine starts and stops nodes while a workload runs.
type chaosCluster struct {
	*cluster
	splits []*netSplit
	slots  []*atomic.Pointer[Persistence]
}

func newChaosCluster(t *testing.T, tune tuning) *chaosCluster {
	return newSplitCluster(t, tune, false)
}

// newSplitCluster is newChaosCluster, with every node recording what its
// Publisher is given (c.pubs) when publish is set.
func newSplitCluster(t *testing.T, tune tuning, publish bool) *chaosCluster {
	c := &chaosCluster{cluster: &cluster{t: t}}
	var servers []Server
	for i := range chaosNodes {
		servers = append(servers, Server{ID: fmt.Sprintf("n%d", i), Address: freeAddr(t)})
	}
	for i := range chaosNodes {
		split := newNetSplit()
		tn := tune
		tn.wrapConn = split.wrap
		c.splits = append(c.splits, split)
		c.slots = append(c.slots, &atomic.Pointer[Persistence]{})
		cfg := Config{
			LocalID: servers[i].ID, Address: servers[i].Address,
			DataDir: t.TempDir(), Servers: servers, tuning: &tn,
			ArchiveLease: archiveLeaseTest,
		}
		c.pubs = append(c.pubs, &pubLog{})
		if publish {
			cfg.Publisher = c.pubs[i].publish
		}
		c.cfgs = append(c.cfgs, cfg)
	}
	c.nodes = make([]*Persistence, chaosNodes)
	t.Cleanup(c.closeAll)
	// Registered after closeAll, so it runs first: no node closes cut off.
	t.Cleanup(func() {
		for _, s := range c.splits {
			s.Heal()
		}
	})
	for i := range chaosNodes {
		c.start(i)
	}
	for i, p := range c.nodes {
		waitReady(t, p)
		c.slots[i].Store(p)
	}
	return c
}

// stores returns one store per node slot.
func (c *chaosCluster) stores() []*timebox.Store {
	res := make([]*timebox.Store, len(c.slots))
	for i, slot := range c.slots {
		st, err := timebox.NewStore(&nodeBackend{slot: slot}, timebox.Config{Hooks: history.Hooks{}})
		require.NoError(c.t, err)
		res[i] = st
	}
	return res
}

// live returns the nodes running now.
func (c *chaosCluster) live() []int {
	var res []int
	for i, slot := range c.slots {
		if slot.Load() != nil {
			res = append(res, i)
		}
	}
	return res
}

// kill closes node i, as a crash would stop it; calls in flight on it end
// with ErrClosed (and ErrUnknownOutcome for writes that may have been
// sent).
func (c *chaosCluster) kill(i int) error {
	p := c.slots[i].Swap(nil)
	if p == nil {
		return fmt.Errorf("node %d is not running", i)
	}
	c.nodes[i] = nil
	return p.Close()
}

// restart opens node i from its DataDir and puts it back in its slot once
// it is Ready.
func (c *chaosCluster) restart(ctx context.Context, i int) error {
	p, err := NewPersistence(c.cfgs[i])
	if err != nil {
		return fmt.Errorf("restart node %d: %w", i, err)
	}
	c.nodes[i] = p
	err = waitFor(ctx, fmt.Sprintf("restarted node %d to be Ready", i), func() (bool, error) {
		select {
		case <-p.Ready():
			return true, nil
		default:
			return false, nil
		}
	})
	if err != nil {
		return err
	}
	c.slots[i].Store(p)
	return nil
}

// leaderOf waits until one of nodes leads and all of them agree on it,
// and returns it.
func (c *chaosCluster) leaderOf(ctx context.Context, nodes []int) (int, error) {
	res := -1
	err := waitFor(ctx, fmt.Sprintf("nodes %v to agree on a leader", nodes), func() (bool, error) {
		l, ok := c.agreed(nodes)
		res = l
		return ok, nil
	})
	return res, err
}

func (c *chaosCluster) agreed(nodes []int) (int, bool) {
	res := -1
	for _, i := range nodes {
		if p := c.slots[i].Load(); p != nil && p.State() == Leader {
			res = i
		}
	}
	if res < 0 {
		return -1, false
	}
	for _, i := range nodes {
		p := c.slots[i].Load()
		if p == nil || p.Leader().ID != c.cfgs[res].LocalID {
			return -1, false
		}
	}
	return res, true
}

func without(nodes []int, x int) []int {
	var res []int
	for _, i := range nodes {
		if i != x {
			res = append(res, i)
		}
	}
	return res
}

// requireConverged waits until every node has applied everything
// committed, then requires the same Raft log (where their logs overlap)
// and the same state digest on all of them.
func (c *chaosCluster) requireConverged() {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	var err error
	for ctx.Err() == nil {
		if err = c.converged(ctx); err == nil {
			return
		}
		_ = history.Sleep(ctx, 100*time.Millisecond)
	}
	require.NoError(c.t, err, "nodes did not converge within %s", waitLong)
}

func (c *chaosCluster) converged(ctx context.Context) error {
	var hashes []string
	for i, p := range c.nodes {
		if p == nil {
			return fmt.Errorf("node %d is down", i)
		}
		if err := p.retry(ctx, p.catchUp(ctx)); err != nil {
			return fmt.Errorf("sync node %d: %w", i, err)
		}
		h, err := stateHash(p)
		if err != nil {
			return err
		}
		hashes = append(hashes, h)
	}
	for i, h := range hashes {
		if h != hashes[0] {
			return fmt.Errorf("state of node %d differs: %s, node 0 %s", i, h, hashes[0])
		}
	}
	return sameLogs(c.nodes)
}

// stateHash returns a digest of node p's state machine: every bucket but
// meta (whose applied index also counts entries that change no data, like
// no-ops and barriers), key by key in order.
func stateHash(p *Persistence) (string, error) {
	h := sha256.New()
	err := p.fsm.view(func(tx *bbolt.Tx) error {
		for _, name := range allBuckets {
			if bytes.Equal(name, bucketMeta) {
				continue
			}
			h.Write(codec.AppendString(nil, string(name)))
			err := tx.Bucket(name).ForEach(func(k, v []byte) error {
				h.Write(codec.AppendBytes(codec.AppendBytes(nil, k), v))
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hash state of %s: %w", p.cfg.LocalID, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// sameLogs compares, index by index, the Raft log entries the nodes
// hold in common. Compaction leaves each node a different first index,
// and a follower that installed a snapshot keeps the entries it had below
// the snapshot but not those the snapshot covers after them: an entry a
// node lacks at or below its snapshot is no difference.
func sameLogs(nodes []*Persistence) error {
	var first, last uint64 = 0, ^uint64(0)
	for _, p := range nodes {
		fi, err := p.store.FirstIndex()
		if err != nil {
			return err
		}
		li, err := p.store.LastIndex()
		if err != nil {
			return err
		}
		first, last = max(first, fi), min(last, li)
	}
	if first == 0 || first > last {
		return fmt.Errorf("the nodes' logs do not overlap (%d..%d)", first, last)
	}
	for idx := first; idx <= last; idx++ {
		if err := sameEntry(nodes, idx); err != nil {
			return err
		}
	}
	return nil
}

func sameEntry(nodes []*Persistence, idx uint64) error {
	var want *hraft.Log
	for i, p := range nodes {
		var got hraft.Log
		err := p.store.GetLog(idx, &got)
		switch {
		case errors.Is(err, hraft.ErrLogNotFound) && idx <= snapshotIndex(p):
			continue
		case err != nil:
			return fmt.Errorf("node %d log %d: %w", i, idx, err)
		case want == nil:
			want = &got
		case got.Term != want.Term || got.Type != want.Type ||
			!bytes.Equal(got.Data, want.Data):
			return fmt.Errorf("log entry %d differs on node %d", idx, i)
		}
	}
	return nil
}

// rounds runs fault for rounds 0 to short-1, or, in the long plan, again
// and again for the plan's Window, with a pause between rounds.
func rounds(
	ctx context.Context, plan history.Plan, short int, fault func(round int) error,
) error {
	if plan.Long {
		return history.Every(ctx, plan.Window, 2*time.Second, fault)
	}
	for round := range short {
		if err := fault(round); err != nil {
			return err
		}
	}
	return nil
}

// The leader is closed under load, as a crash would stop it (its state
// file is synced on Close; TestChaosProcessesKilled covers SIGKILL). The
// other two elect a new leader and writes go on through them; the old
// leader is restarted from its DataDir and catches up.
func TestChaosLeaderKilled(t *testing.T) {
	plan := chaosPlan()
	c := newChaosCluster(t, chaosTuning())
	var kills atomic.Int64
	arch := startArchiving(t, c.stores(), 24)
	history.RunChaos(t, plan, "raft", "leader killed, restarted", c.stores(),
		func(ctx context.Context) error {
			return rounds(ctx, plan, 1, func(int) error {
				old, err := c.leaderOf(ctx, c.live())
				if err != nil {
					return err
				}
				if err := c.kill(old); err != nil {
					return err
				}
				kills.Add(1)
				if _, err := c.leaderOf(ctx, c.live()); err != nil {
					return err
				}
				// Writes go on without the old leader for a while.
				if err := history.Sleep(ctx, plan.Pick(500, 3000)*time.Millisecond); err != nil {
					return err
				}
				return c.restart(ctx, old)
			})
		})
	t.Logf("leaders killed: %d", kills.Load())
	require.Positive(t, kills.Load())
	arch.finish(c)
	c.requireConverged()
}

// chaosArchive archives aggregates and consumes the archive through every
// node's store while a chaos scenario runs.
type chaosArchive struct {
	t      *testing.T
	stores []*timebox.Store
	ids    []timebox.AggregateID
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	archived map[string]bool
	handled  map[string]int
}

// startArchiving writes n aggregates, then archives them one by one
// through the stores in turn (again after a failure: archiving twice is a
// no-op) while a consumer per store takes records, until finish.
func startArchiving(t *testing.T, stores []*timebox.Store, n int) *chaosArchive {
	a := &chaosArchive{
		t: t, stores: stores, archived: map[string]bool{}, handled: map[string]int{},
	}
	nonce := fmt.Sprint(time.Now().UnixNano())
	for i := range n {
		id := timebox.NewAggregateID("archive", timebox.ID(nonce), timebox.ID(fmt.Sprint(i)))
		require.NoError(t, stores[i%len(stores)].AppendEvents(id, 0, items("x", 1)))
		a.ids = append(a.ids, id)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	a.wg.Go(func() {
		for i, id := range a.ids {
			for ctx.Err() == nil {
				wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
				err := stores[i%len(stores)].ArchiveContext(wctx, id)
				wcancel()
				if err == nil {
					a.mu.Lock()
					a.archived[id.String()] = true
					a.mu.Unlock()
					break
				}
				_ = history.Sleep(ctx, 50*time.Millisecond)
			}
			_ = history.Sleep(ctx, 100*time.Millisecond)
		}
	})
	for _, st := range stores {
		a.wg.Go(func() {
			for ctx.Err() == nil {
				// Errors (node down, lost acknowledgement) leave the
				// record to be delivered again.
				if a.consume(ctx, st, 500*time.Millisecond) != nil {
					_ = history.Sleep(ctx, 50*time.Millisecond)
				}
			}
		})
	}
	return a
}

func (a *chaosArchive) consume(ctx context.Context, st *timebox.Store, d time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return st.ConsumeArchive(wctx, func(_ context.Context, r *timebox.ArchiveRecord) error {
		a.mu.Lock()
		defer a.mu.Unlock()
		a.handled[r.AggregateID.String()]++
		return nil
	})
}

// finish stops the archiver and consumers, archives what is left and
// drains the archive through node 0, then requires every aggregate to be
// archived and handled at least once, and no node to hold a record.
func (a *chaosArchive) finish(c *chaosCluster) {
	a.cancel()
	a.wg.Wait()
	st := c.stores()[0]
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitLong)
	defer cancel()
	for _, id := range a.ids {
		require.NoError(a.t, st.ArchiveContext(ctx, id))
	}
	err := waitFor(ctx, "every archived record to be handled", func() (bool, error) {
		a.mu.Lock()
		done := len(a.handled) == len(a.ids)
		a.mu.Unlock()
		if !done {
			_ = a.consume(ctx, st, time.Second)
		}
		return done, nil
	})
	require.NoError(a.t, err)
	for _, id := range a.ids {
		require.Positive(a.t, a.handled[id.String()], "%s handled", id)
	}
	a.t.Logf("archive: %d records, %d archived during the run, %d deliveries",
		len(a.ids), len(a.archived), sum(a.handled))
	for i, p := range c.nodes {
		c.synced(i)
		require.Zero(a.t, archivedCount(a.t, p), "node %d holds no record", i)
	}
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// A node is cut off the network (its traffic stalls both ways) and then
// healed: the leader, which loses its lease while the other two elect a
// new one, and a follower, in turn. Calls through the cut node stall until they time out.
func TestChaosPartition(t *testing.T) {
	plan := chaosPlan()
	c := newChaosCluster(t, chaosTuning())
	var cuts atomic.Int64
	history.RunChaos(t, plan, "raft", "node partitioned, healed", c.stores(),
		func(ctx context.Context) error {
			return rounds(ctx, plan, 2, func(round int) error {
				leader, err := c.leaderOf(ctx, c.live())
				if err != nil {
					return err
				}
				victim := leader
				if round%2 == 1 {
					victim = without(c.live(), leader)[0]
				}
				c.splits[victim].Cut()
				cuts.Add(1)
				defer c.splits[victim].Heal()
				next, err := c.leaderOf(ctx, without(c.live(), victim))
				if err != nil {
					return err
				}
				if next == victim {
					return fmt.Errorf("the cut-off node %d still leads", victim)
				}
				return history.Sleep(ctx, plan.Pick(500, 3000)*time.Millisecond)
			})
		})
	t.Logf("partitions: %d", cuts.Load())
	require.Positive(t, cuts.Load())
	c.requireConverged()
}

// A follower is cut off until every other node has taken a snapshot and
// compacted its log past the follower's last entry; healed, the follower
// can only catch up by installing a snapshot (whichever node leads then),
// which the fault waits for.
func TestChaosSnapshotInstall(t *testing.T) {
	plan := chaosPlan()
	tune := chaosTuning()
	tune.trailingLogs = 32
	c := newChaosCluster(t, tune)
	var installs atomic.Int64
	history.RunChaos(t, plan, "raft", "follower away until compaction", c.stores(),
		func(ctx context.Context) error {
			return rounds(ctx, plan, 1, func(int) error {
				if err := c.keepAway(ctx, plan.Pick(0, 3*time.Second)); err != nil {
					return err
				}
				installs.Add(1)
				return nil
			})
		})
	t.Logf("snapshots installed: %d", installs.Load())
	require.Positive(t, installs.Load())
	c.requireConverged()
}

// keepAway cuts a follower off for at least minAway, snapshots every
// other node until its log no longer holds the entry after the follower's
// last, drops the follower's connections (a partition long enough for TCP
// to give up), heals it, and waits until it has installed a snapshot
// at least as new as those. Compacting only the leader would not do: a
// leader change after the heal (a loaded machine may see one) would let a
// node that still holds the entries bring the follower up to date from
// its log.
func (c *chaosCluster) keepAway(ctx context.Context, minAway time.Duration) error {
	leader, err := c.leaderOf(ctx, c.live())
	if err != nil {
		return err
	}
	f := without(c.live(), leader)[0]
	away := c.slots[f].Load()
	c.splits[f].Cut()
	defer c.splits[f].Heal()
	if err := history.Sleep(ctx, minAway); err != nil {
		return err
	}
	snap, err := compactPast(ctx, c.running(without(c.live(), f)), away)
	if err != nil {
		return err
	}
	// Without this, AppendEntries a leader's pipeline sent before the cut,
	// held on the stalled connection, would bring the follower up to date
	// after the heal from entries read before the compaction.
	c.splits[f].Drop()
	c.splits[f].Heal()
	err = waitFor(ctx, fmt.Sprintf("node %d to install a snapshot at %d or later", f, snap),
		func() (bool, error) { return snapshotIndex(away) >= snap, nil })
	if err != nil {
		return fmt.Errorf("%w (node %d: last index %d, snapshot %d, leader %q)", err,
			f, away.raft.LastIndex(), snapshotIndex(away), away.Leader().ID)
	}
	return nil
}

// compactPast snapshots each of nodes until its log starts after away's
// last entry, and returns the lowest of their snapshot indexes then. It
// reads away's last index afresh each time: an AppendEntries read just
// before the cut may still be adding entries to away's log.
func compactPast(ctx context.Context, nodes []*Persistence, away *Persistence) (uint64, error) {
	var snap uint64
	err := waitFor(ctx, fmt.Sprintf("every other node to compact its log past node %s's last entry",
		away.cfg.LocalID), func() (bool, error) {
		last := away.raft.LastIndex()
		snap = ^uint64(0)
		done := true
		for _, p := range nodes {
			first, err := p.store.FirstIndex()
			if err != nil {
				return false, err
			}
			if first > last+1 {
				snap = min(snap, snapshotIndex(p))
				continue
			}
			// ErrNothingNewToSnapshot and the like: wait for more writes.
			done = false
			_ = p.raft.Snapshot().Error()
		}
		return done && away.raft.LastIndex() == last, nil
	})
	return snap, err
}

// running returns the nodes running in slots idx.
func (c *chaosCluster) running(idx []int) []*Persistence {
	res := make([]*Persistence, len(idx))
	for j, i := range idx {
		res[j] = c.slots[i].Load()
	}
	return res
}

func snapshotIndex(p *Persistence) uint64 {
	idx, _ := strconv.ParseUint(p.raft.Stats()["last_snapshot_index"], 10, 64)
	return idx
}

// nodeBackend is a process's view of the node in its slot: calls go to
// the node running there now, and fail with errNodeDown while none is.
// Reads of events first catch up with the leader's commit index.
type nodeBackend struct {
	slot *atomic.Pointer[Persistence]
}

var (
	_ timebox.Backend  = (*nodeBackend)(nil)
	_ timebox.Archiver = (*nodeBackend)(nil)
)

// errNodeDown: the call was not sent, so nothing was written.
var errNodeDown = fmt.Errorf("%w: node is down", timebox.ErrClosed)

func (b *nodeBackend) node() (*Persistence, error) {
	if p := b.slot.Load(); p != nil {
		return p, nil
	}
	return nil, errNodeDown
}

// Close leaves the node to the cluster.
func (b *nodeBackend) Close() error { return nil }

func (b *nodeBackend) Ready() <-chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}

func (b *nodeBackend) NewStore(cfg timebox.Config) (*timebox.Store, error) {
	return timebox.NewStore(b, cfg)
}

func (b *nodeBackend) Append(ctx context.Context, req timebox.AppendRequest) error {
	p, err := b.node()
	if err != nil {
		return err
	}
	return p.Append(ctx, req)
}

func (b *nodeBackend) LoadEvents(
	ctx context.Context, id timebox.AggregateID, fromSeq int64,
) ([]*timebox.Event, error) {
	p, err := b.node()
	if err != nil {
		return nil, err
	}
	if err := p.retry(ctx, p.catchUp(ctx)); err != nil {
		return nil, err
	}
	return p.LoadEvents(ctx, id, fromSeq)
}

func (b *nodeBackend) LoadSnapshot(
	ctx context.Context, id timebox.AggregateID,
) (*timebox.SnapshotRecord, error) {
	p, err := b.node()
	if err != nil {
		return nil, err
	}
	return p.LoadSnapshot(ctx, id)
}

func (b *nodeBackend) SaveSnapshot(ctx context.Context, req timebox.SnapshotRequest) error {
	p, err := b.node()
	if err != nil {
		return err
	}
	return p.SaveSnapshot(ctx, req)
}

func (b *nodeBackend) GetAggregateStatus(
	ctx context.Context, id timebox.AggregateID,
) (string, error) {
	p, err := b.node()
	if err != nil {
		return "", err
	}
	return p.GetAggregateStatus(ctx, id)
}

func (b *nodeBackend) ListAggregatesByStatus(
	ctx context.Context, status string,
) ([]timebox.StatusEntry, error) {
	p, err := b.node()
	if err != nil {
		return nil, err
	}
	return p.ListAggregatesByStatus(ctx, status)
}

func (b *nodeBackend) ListLabelValues(ctx context.Context, label string) ([]string, error) {
	p, err := b.node()
	if err != nil {
		return nil, err
	}
	return p.ListLabelValues(ctx, label)
}

func (b *nodeBackend) ListAggregatesByLabel(
	ctx context.Context, label, value string,
) ([]timebox.AggregateID, error) {
	p, err := b.node()
	if err != nil {
		return nil, err
	}
	return p.ListAggregatesByLabel(ctx, label, value)
}

func (b *nodeBackend) ListAggregates(
	ctx context.Context, prefix timebox.AggregateID,
) ([]timebox.AggregateID, error) {
	p, err := b.node()
	if err != nil {
		return nil, err
	}
	return p.ListAggregates(ctx, prefix)
}

func (b *nodeBackend) Archive(ctx context.Context, id timebox.AggregateID) error {
	p, err := b.node()
	if err != nil {
		return err
	}
	return p.Archive(ctx, id)
}

func (b *nodeBackend) ConsumeArchive(ctx context.Context, handler timebox.ArchiveHandler) error {
	p, err := b.node()
	if err != nil {
		return err
	}
	return p.ConsumeArchive(ctx, handler)
}

// A node listens before its Raft runs; a forwarded call arriving then (a
// peer that still takes the restarting node for the leader, as
// TestChaosProcessesKilled first found) is answered notLeader instead of
// reaching the Raft that does not exist yet.
func TestForwardBeforeRaftStarts(t *testing.T) {
	p := &Persistence{started: make(chan struct{})}
	for _, tag := range []byte{fwdApply, fwdReadIndex} {
		code, _ := p.handleForward(tag, nil)
		require.Equal(t, codeNotLeader, code)
	}
}
