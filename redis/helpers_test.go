package redis

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kode4food/timebox/internal/bench"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/testserver"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(bench.WithTargets(m, benchTargets...))
}

// testConfig fills in the test server's address and a fresh Prefix, and
// deletes the Prefix's keys when t ends.
func testConfig(t testing.TB, cfg Config) Config {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = testserver.RedisAddr(t)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = testserver.Prefix(t)
	}
	t.Cleanup(func() { deleteKeys(t, cfg) })
	return cfg
}

// newPersistence opens a Persistence on testConfig(t, cfg), closed when t
// ends.
func newPersistence(t testing.TB, cfg Config) *Persistence {
	t.Helper()
	p, err := NewPersistence(testConfig(t, cfg))
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// opener returns a function that opens a Persistence on cfg, for
// conformance.Stores.
func opener(cfg Config) func() (timebox.Backend, error) {
	return func() (timebox.Backend, error) { return NewPersistence(cfg) }
}

// newStore opens a Store on a fresh Persistence, closed when t ends.
func newStore(t testing.TB, cfg Config, tcfg timebox.Config) *timebox.Store {
	t.Helper()
	s, err := newPersistence(t, cfg).NewStore(tcfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// deleteKeys removes every key under cfg.Prefix, on every master.
func deleteKeys(t testing.TB, cfg Config) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	del := func(ctx context.Context, c *redis.Client) error {
		iter := c.Scan(ctx, 0, cfg.Prefix+":*", 1000).Iterator()
		for iter.Next(ctx) {
			if err := c.Del(ctx, iter.Val()).Err(); err != nil {
				return err
			}
		}
		return iter.Err()
	}
	cfg, err := DefaultConfig().With(cfg).resolve()
	require.NoError(t, err)
	addrs := cfg.addrs()
	if len(addrs) > 1 || cfg.Shard != "" && isCluster(ctx, addrs[0], cfg.Password) {
		c := redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: addrs, Username: cfg.Username, Password: cfg.Password,
			TLSConfig: cfg.TLS, DisableIdentity: true,
			MaintNotificationsConfig: noMaintNotifications(),
		})
		defer func() { _ = c.Close() }()
		require.NoError(t, c.ForEachMaster(ctx, del))
		return
	}
	c := redis.NewClient(&redis.Options{
		Addr: addrs[0], Username: cfg.Username, Password: cfg.Password, DB: cfg.DB,
		TLSConfig: cfg.TLS, DisableIdentity: true,
		MaintNotificationsConfig: noMaintNotifications(),
	})
	defer func() { _ = c.Close() }()
	require.NoError(t, del(ctx, c))
}

func isCluster(ctx context.Context, addr, password string) bool {
	c := redis.NewClient(&redis.Options{
		Addr: addr, Password: password, DisableIdentity: true,
		MaintNotificationsConfig: noMaintNotifications(),
	})
	defer func() { _ = c.Close() }()
	info, err := c.Info(ctx, "cluster").Result()
	return err == nil && strings.Contains(info, "cluster_enabled:1")
}
