package redis

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/conformance"
	"github.com/kode4food/timebox/internal/faultproxy"
	"github.com/kode4food/timebox/internal/history"
	"github.com/kode4food/timebox/internal/testserver"
)

// The chaos scenarios run a concurrent workload on a few hot aggregates
// through several Persistence values (standing for processes) while a
// fault strikes the real connections, then require that no acknowledged
// event is lost, none is written twice, no gap opens, the history is
// linearizable and the same stores, not rebuilt, write again afterwards.
// Each scenario runs two workloads at once against the same stores and
// the same fault: one through Executors, one through raw AppendEvents at
// the head each worker last saw. By default a scenario takes a second or
// two; TIMEBOX_CHAOS=1 makes each last a minute or more.

// chaosProcesses is the number of Persistence values per scenario.
const chaosProcesses = 3

// chaosStores opens n Persistence values on testConfig(t, cfg), so on
// one fresh Prefix unless cfg names one, and a Store on each; all are
// closed when t ends.
func chaosStores(t *testing.T, cfg Config, n int) []*timebox.Store {
	t.Helper()
	cfg = testConfig(t, cfg)
	return conformance.Stores(t, n, timebox.Config{Hooks: history.Hooks{}}, opener(cfg))
}

// The proxy cuts every connection, both sides, again and again: requests
// in flight are lost before or after the server ran them.
func TestChaosCutConnections(t *testing.T) {
	plan := history.NewPlan()
	px := faultproxy.New(t, testserver.RedisAddr(t))
	stores := chaosStores(t, Config{Addr: px.Addr()}, chaosProcesses)
	history.RunChaos(t, plan, "redis", "proxy cuts all connections", stores,
		history.CutConnections(plan, px))
	require.Greater(t, px.Accepted(), int64(chaosProcesses),
		"stores opened no new connections after the cuts")
}

// The proxy forwards requests and swallows their replies, cutting the
// connection: mostly one request at a time, now and then every request
// for a short burst. The writes ran, but the callers cannot know; none
// may be applied twice.
func TestChaosDropReplies(t *testing.T) {
	plan := history.NewPlan()
	px := faultproxy.New(t, testserver.RedisAddr(t))
	stores := chaosStores(t, Config{Addr: px.Addr()}, chaosProcesses)
	history.RunChaos(t, plan, "redis", "proxy drops replies", stores,
		history.DropReplies(plan, px))
	require.Positive(t, px.Dropped(), "no reply was dropped")
}

// The proxy holds every chunk of traffic in both directions. The long run
// steps the delay up until a round trip (3s each way) exceeds go-redis's
// 5s read timeout: calls time out after the server ran them.
func TestChaosDelay(t *testing.T) {
	plan := history.NewPlan()
	px := faultproxy.New(t, testserver.RedisAddr(t))
	stores := chaosStores(t, Config{Addr: px.Addr()}, chaosProcesses)
	history.RunChaos(t, plan, "redis", "proxy delays traffic", stores,
		history.Delay(plan, px, 5*time.Millisecond, 50*time.Millisecond, 3*time.Second))
}

// An admin client kills the stores' connections on the server with CLIENT
// KILL ID: alternately all of them and one picked at random. The stores
// carry their own ClientName and only connections of that name are
// killed, so the scenario runs on the shared server: a bystander client
// keeps its connection throughout.
func TestChaosClientKill(t *testing.T) {
	plan := history.NewPlan()
	addr := testserver.RedisAddr(t)
	name := "tb-" + testserver.Prefix(t)
	stores := chaosStores(t, Config{Addr: addr, ClientName: name}, chaosProcesses)
	admin := redis.NewClient(&redis.Options{
		Addr: addr, PoolSize: 1, DisableIdentity: true,
		MaintNotificationsConfig: noMaintNotifications(),
	})
	t.Cleanup(func() { _ = admin.Close() })
	ctx := context.Background()
	bystander, err := admin.ClientID(ctx).Result()
	require.NoError(t, err)
	var killed atomic.Int64
	history.RunChaos(t, plan, "redis", "CLIENT KILL", stores, func(ctx context.Context) error {
		return history.Every(ctx, plan.Window, plan.Pick(80, 300)*time.Millisecond,
			func(round int) error {
				n, err := killClients(ctx, admin, name, round%2 == 0)
				killed.Add(n)
				return err
			})
	})
	require.Positive(t, killed.Load(), "CLIENT KILL killed no connection")
	after, err := admin.ClientID(ctx).Result()
	require.NoError(t, err)
	require.Equal(t, bystander, after, "the bystander's connection was killed")
}

// killClients kills, by ID, every connection named name, or, unless all,
// one of them at random. It returns how many it killed.
func killClients(ctx context.Context, admin *redis.Client, name string, all bool) (int64, error) {
	list, err := admin.ClientList(ctx).Result()
	if err != nil {
		return 0, fmt.Errorf("CLIENT LIST: %w", err)
	}
	ids := namedClients(list, name)
	if !all && len(ids) > 1 {
		ids = []string{ids[rand.IntN(len(ids))]}
	}
	var n int64
	for _, id := range ids {
		k, err := admin.ClientKillByFilter(ctx, "ID", id).Result()
		if err != nil {
			return n, fmt.Errorf("CLIENT KILL ID %s: %w", id, err)
		}
		n += k
	}
	return n, nil
}

// namedClients returns the ids of the connections named name in a CLIENT
// LIST reply.
func namedClients(list, name string) []string {
	var ids []string
	for line := range strings.Lines(list) {
		var id string
		named := false
		for f := range strings.FieldsSeq(line) {
			if v, ok := strings.CutPrefix(f, "id="); ok {
				id = v
			}
			if f == "name="+name {
				named = true
			}
		}
		if named && id != "" {
			ids = append(ids, id)
		}
	}
	return ids
}
