package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/conformance"
	"github.com/kode4food/timebox/internal/history"
)

// The tests in this file move a store's cluster slot from one master to
// another, the way redis-cli --cluster reshard does, and check that no
// script ever leaves half a write behind while keys sit on both nodes.

// slotMover moves one slot between the masters of a test cluster.
type slotMover struct {
	t       testing.TB
	slot    int
	addrs   []string
	ids     []string
	clients []*redis.Client
	owner   int
	moving  int // the master a move in progress goes to, or -1
}

func newSlotMover(t testing.TB, addrs []string, shard string) *slotMover {
	t.Helper()
	ctx := context.Background()
	m := &slotMover{t: t, addrs: addrs, moving: -1}
	for _, a := range addrs {
		c := redis.NewClient(&redis.Options{
			Addr: a, DisableIdentity: true,
			MaintNotificationsConfig: noMaintNotifications(),
		})
		t.Cleanup(func() { _ = c.Close() })
		id, err := c.ClusterMyID(ctx).Result()
		require.NoError(t, err)
		m.clients = append(m.clients, c)
		m.ids = append(m.ids, id)
	}
	slot, err := m.clients[0].ClusterKeySlot(ctx, shard).Result()
	require.NoError(t, err)
	m.slot = int(slot)
	shards, err := m.clients[0].ClusterShards(ctx).Result()
	require.NoError(t, err)
	m.owner = -1
	for _, s := range shards {
		for _, r := range s.Slots {
			if r.Start <= slot && slot <= r.End {
				m.owner = slices.Index(m.ids, s.Nodes[0].ID)
			}
		}
	}
	require.GreaterOrEqual(t, m.owner, 0, "no owner of slot %d", m.slot)
	t.Cleanup(func() {
		if m.moving >= 0 { // a failed test left the slot half-moved
			_ = m.finish(context.Background(), m.moving, 0)
		}
	})
	return m
}

// begin marks the slot as leaving its owner for master to.
func (m *slotMover) begin(ctx context.Context, to int) error {
	from := m.owner
	m.moving = to
	if err := m.clients[to].Do(ctx, "CLUSTER", "SETSLOT", m.slot,
		"IMPORTING", m.ids[from]).Err(); err != nil {
		return fmt.Errorf("SETSLOT IMPORTING: %w", err)
	}
	if err := m.clients[from].Do(ctx, "CLUSTER", "SETSLOT", m.slot,
		"MIGRATING", m.ids[to]).Err(); err != nil {
		return fmt.Errorf("SETSLOT MIGRATING: %w", err)
	}
	return nil
}

// migrate moves the given keys of the slot from its owner to master to.
func (m *slotMover) migrate(ctx context.Context, to int, keys ...string) error {
	host, port, _ := net.SplitHostPort(m.addrs[to])
	args := []any{"MIGRATE", host, port, "", 0, 5000, "KEYS"}
	for _, k := range keys {
		args = append(args, k)
	}
	if err := m.clients[m.owner].Do(ctx, args...).Err(); err != nil {
		return fmt.Errorf("MIGRATE %v: %w", keys, err)
	}
	return nil
}

// finish moves the slot's remaining keys, one at a time with pause
// between them, then gives the slot to master to on every master.
func (m *slotMover) finish(ctx context.Context, to int, pause time.Duration) error {
	for {
		keys, err := m.clients[m.owner].ClusterGetKeysInSlot(ctx, m.slot, 1).Result()
		if err != nil {
			return fmt.Errorf("GETKEYSINSLOT: %w", err)
		}
		if len(keys) == 0 {
			break
		}
		if err := m.migrate(ctx, to, keys...); err != nil {
			return err
		}
		if err := history.Sleep(ctx, pause); err != nil {
			return err
		}
	}
	order := []int{to, m.owner}
	for i := range m.clients {
		if i != to && i != m.owner {
			order = append(order, i)
		}
	}
	for _, i := range order {
		if err := m.clients[i].Do(ctx, "CLUSTER", "SETSLOT", m.slot,
			"NODE", m.ids[to]).Err(); err != nil {
			return fmt.Errorf("SETSLOT NODE: %w", err)
		}
	}
	m.owner, m.moving = to, -1
	return nil
}

// move moves the slot to the next master, key by key.
func (m *slotMover) move(ctx context.Context, pause time.Duration) error {
	to := (m.owner + 1) % len(m.clients)
	if err := m.begin(ctx, to); err != nil {
		return err
	}
	return m.finish(ctx, to, pause)
}

// requireSettled requires every key of the slot to be on its owner.
func (m *slotMover) requireSettled(t testing.TB) {
	t.Helper()
	for i, c := range m.clients {
		n, err := c.ClusterCountKeysInSlot(context.Background(), m.slot).Result()
		require.NoError(t, err)
		if i != m.owner {
			require.Zero(t, n, "master %d holds keys of a slot it does not own", i)
		}
	}
}

// digest picks an index from an event's payload, so the index an
// aggregate should have follows from its last event alone.
func digest(ev *timebox.Event) (status, value string) {
	h := crc32.ChecksumIEEE(ev.Data)
	return []string{"a", "b", "c", ""}[h%4], []string{"1", "2", "3", ""}[h/4%4]
}

// digestIndexer sets the status and the label "k" from the batch's last
// event (an empty one clears the status or removes the label).
func digestIndexer(evs []*timebox.Event) []*timebox.Index {
	status, value := digest(evs[len(evs)-1])
	return []*timebox.Index{{Status: &status, Labels: map[string]string{"k": value}}}
}

// requireDigestIndex requires every aggregate of st to be indexed exactly
// as digestIndexer says its last event should be, and the index to hold
// nothing else.
func requireDigestIndex(t testing.TB, st *timebox.Store) {
	t.Helper()
	ids, err := st.ListAggregates(nil)
	require.NoError(t, err)
	require.NotEmpty(t, ids)
	byStatus := map[string][]string{}
	byValue := map[string][]string{}
	for _, id := range ids {
		evs, err := st.GetEvents(id, 0)
		require.NoError(t, err)
		require.NotEmpty(t, evs, "aggregate %s", id)
		status, value := digest(evs[len(evs)-1])
		got, err := st.GetAggregateStatus(id)
		require.NoError(t, err)
		require.Equal(t, status, got, "status of %s", id)
		if status != "" {
			byStatus[status] = append(byStatus[status], id.String())
		}
		if value != "" {
			byValue[value] = append(byValue[value], id.String())
		}
	}
	for _, status := range []string{"a", "b", "c"} {
		entries, err := st.ListAggregatesByStatus(status)
		require.NoError(t, err)
		var got []string
		for _, e := range entries {
			got = append(got, e.ID.String())
		}
		require.ElementsMatch(t, byStatus[status], got, "status %s", status)
	}
	var values []string
	for _, v := range []string{"1", "2", "3"} {
		got, err := st.ListAggregatesByLabel("k", v)
		require.NoError(t, err)
		var strs []string
		for _, id := range got {
			strs = append(strs, id.String())
		}
		require.ElementsMatch(t, byValue[v], strs, "label value %s", v)
		if len(strs) > 0 {
			values = append(values, v)
		}
	}
	got, err := st.ListLabelValues("k")
	require.NoError(t, err)
	require.ElementsMatch(t, values, got)
}

// dataIndexer sets the status and the label "k" to the batch's last
// event's data (a JSON string).
func dataIndexer(evs []*timebox.Event) []*timebox.Index {
	var s string
	_ = json.Unmarshal(evs[len(evs)-1].Data, &s)
	return []*timebox.Index{{Status: &s, Labels: map[string]string{"k": s}}}
}

// testSlotMidMigration stops a slot's move half-way, with the store's
// status set already on the new master and the aggregate still on the old
// one. An append that changes the status needs both, so the cluster
// refuses to start it (TRYAGAIN, after go-redis follows the ASK): the
// error says nothing was written, and nothing was. An append that does not
// touch the index goes on, on the old master. Once the move is done, both
// kinds work again and the index is exact.
func testSlotMidMigration(t *testing.T, addrs []string, seeds string) {
	ctx := context.Background()
	cfg := testConfig(t, Config{Addr: seeds, Shard: "mid"})
	p, err := NewPersistence(cfg)
	require.NoError(t, err)
	st, err := p.NewStore(timebox.Config{Indexer: dataIndexer})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	m := newSlotMover(t, addrs, "mid")
	id := timebox.NewAggregateID("order", "1")
	other := timebox.NewAggregateID("order", "2")
	require.NoError(t, st.AppendEvents(id, 0, []*timebox.Event{event("first")}))
	require.NoError(t, st.AppendEvents(other, 0, []*timebox.Event{event("other")}))

	to := (m.owner + 1) % len(addrs)
	require.NoError(t, m.begin(ctx, to))
	require.NoError(t, m.migrate(ctx, to, p.keys.status))

	err = st.AppendEvents(id, 1, []*timebox.Event{event("second")})
	require.ErrorContains(t, err, "TRYAGAIN")
	require.NotErrorIs(t, err, timebox.ErrUnknownOutcome)

	// No index change: the script names only the aggregate's keys.
	require.NoError(t, p.Append(ctx, timebox.AppendRequest{
		ID: id, ExpectedSequence: 1, Events: []*timebox.Event{event("plain")},
	}))

	require.NoError(t, m.finish(ctx, to, 0))
	m.requireSettled(t)
	// The first read after the move is the feed's: its raw XRANGE gets
	// MOVED, and is sent again as a plain one, which follows it.
	all, err := st.ReadAll(ctx, timebox.Position{}, 10)
	require.NoError(t, err)
	require.Len(t, all, 3)
	require.JSONEq(t, `"plain"`, string(all[2].Data))
	evs, err := st.GetEvents(id, 0)
	require.NoError(t, err)
	require.Len(t, evs, 2, "the refused append wrote events")
	require.JSONEq(t, `"plain"`, string(evs[1].Data))
	status, err := st.GetAggregateStatus(id)
	require.NoError(t, err)
	require.Equal(t, "first", status)

	require.NoError(t, st.AppendEvents(id, 2, []*timebox.Event{event("third")}))
	require.NoError(t, st.AppendEvents(other, 1, []*timebox.Event{event("again")}))
	status, err = st.GetAggregateStatus(id)
	require.NoError(t, err)
	require.Equal(t, "third", status)
	for _, gone := range []string{"first", "other"} {
		entries, err := st.ListAggregatesByStatus(gone)
		require.NoError(t, err)
		require.Empty(t, entries, "status %s", gone)
	}
	ids, err := st.ListAggregatesByLabel("k", "third")
	require.NoError(t, err)
	require.Equal(t, []timebox.AggregateID{id}, ids)
	values, err := st.ListLabelValues("k")
	require.NoError(t, err)
	require.Equal(t, []string{"again", "third"}, values)
}

// TestChaosSlotMigration starts a 3-master cluster and moves the store's
// slot round the masters, key by key, while the chaos workloads (Exec and
// raw appends, three stores, every batch changing the status and a label)
// run, then audits the history (nothing lost, doubled or partial,
// linearizable, writes go on after the move) and the index (exactly what
// each aggregate's last event says).
func TestChaosSlotMigration(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	addrs := startCluster(t)
	seeds := strings.Join(addrs, ",")
	plan := history.NewPlan()
	cfg := testConfig(t, Config{Addr: seeds, Shard: "move"})
	stores := conformance.Stores(t, chaosProcesses,
		timebox.Config{Indexer: digestIndexer}, opener(cfg))
	m := newSlotMover(t, addrs, "move")
	moves := 0
	history.RunChaos(t, plan, "redis", "cluster slot migration", stores,
		func(ctx context.Context) error {
			return history.Every(ctx, plan.Window, plan.Pick(0, time.Second),
				func(int) error {
					moves++
					return m.move(ctx, plan.Pick(5, 50)*time.Millisecond)
				})
		})
	require.Positive(t, moves)
	t.Logf("moved slot %d %d times", m.slot, moves)
	m.requireSettled(t)
	requireDigestIndex(t, stores[0])
}
