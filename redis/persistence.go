// Package redis is a Timebox backend on Redis 7 or Valkey 7.2+, standalone
// or Redis Cluster, through github.com/redis/go-redis/v9.
//
// Appends, snapshots and archive moves are Lua scripts, so each is one
// atomic step and one round trip; DESIGN.md describes the key layout, the
// scripts and what a crash leaves behind. Open one with NewPersistence and
// make stores with Persistence.NewStore.
package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/kode4food/timebox"
)

// Persistence is a timebox.Backend and timebox.Archiver on one Redis
// server or cluster. It is safe for concurrent use; many Persistence
// values, in one process or many, may share a Prefix.
type Persistence struct {
	client   redis.UniversalClient
	config   Config
	keys     keys
	consumer string
	ready    chan struct{}
	closed   atomic.Bool
	grouped  atomic.Bool
	consumed atomic.Bool
	// claimFrom is where the next XAUTOCLAIM starts (a stream ID string).
	claimFrom atomic.Value
}

// connectTimeout bounds what NewPersistence waits for the server.
const connectTimeout = 10 * time.Second

var (
	_ timebox.Backend  = (*Persistence)(nil)
	_ timebox.Archiver = (*Persistence)(nil)
)

// NewPersistence lays cfgs over DefaultConfig, validates the result, then
// connects, checks the server answers (and accepts the password) and loads
// the scripts. A cluster is used when Addr lists several addresses or the
// one server has cluster mode on; a cluster needs Shard (ErrShardRequired)
// and DB 0 (ErrInvalidDB). It returns the Config's validation error, or an
// error when the server cannot be reached or refuses the connection.
func NewPersistence(cfgs ...Config) (*Persistence, error) {
	cfg := timebox.Configure(DefaultConfig(), cfgs...)
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	client, err := connect(ctx, cfg)
	if err != nil {
		return nil, err
	}
	p := &Persistence{
		client:   client,
		config:   cfg,
		keys:     newKeys(cfg),
		consumer: newConsumerName(),
		ready:    make(chan struct{}),
	}
	if err := p.loadScripts(ctx); err != nil {
		_ = client.Close()
		return nil, err
	}
	close(p.ready)
	return p, nil
}

// Config returns the configuration in use, defaults applied.
func (p *Persistence) Config() Config {
	return p.config
}

// NewStore returns a Store on p; closing the Store closes p.
func (p *Persistence) NewStore(cfg timebox.Config) (*timebox.Store, error) {
	return timebox.NewStore(p, cfg)
}

// Ready is closed once p can serve calls, which is before NewPersistence
// returns.
func (p *Persistence) Ready() <-chan struct{} {
	return p.ready
}

// Close releases p's connections; later calls return ErrClosed. A second
// Close returns nil.
func (p *Persistence) Close() error {
	if p.closed.Swap(true) {
		return nil
	}
	if p.consumed.Load() {
		p.dropConsumer()
	}
	return p.client.Close()
}

func (p *Persistence) checkOpen() error {
	if p.closed.Load() {
		return timebox.ErrClosed
	}
	return nil
}

func connect(ctx context.Context, cfg Config) (redis.UniversalClient, error) {
	addrs := cfg.addrs()
	if len(addrs) == 1 {
		client := redis.NewClient(clientOptions(cfg))
		cluster, err := probe(ctx, client, cfg)
		if err != nil || !cluster {
			return client, err
		}
		_ = client.Close()
	}
	if cfg.Shard == "" {
		return nil, ErrShardRequired
	}
	if cfg.DB != 0 {
		return nil, fmt.Errorf("%w: a cluster has only DB 0", ErrInvalidDB)
	}
	client := redis.NewClusterClient(clusterOptions(cfg, addrs))
	if err := client.Ping(ctx).Err(); err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("redis: connect to cluster %s: %w", cfg.Addr, err)
	}
	return client, nil
}

// probe pings a standalone client and reports whether the server is in
// cluster mode. The client is closed when an error is returned.
func probe(ctx context.Context, c *redis.Client, cfg Config) (bool, error) {
	info, err := c.Info(ctx, "cluster").Result()
	if err != nil {
		_ = c.Close()
		return false, fmt.Errorf("redis: connect to %s: %w", cfg.Addr, err)
	}
	return strings.Contains(info, "cluster_enabled:1"), nil
}

func clientOptions(cfg Config) *redis.Options {
	return &redis.Options{
		Addr:                     cfg.Addr,
		Password:                 cfg.Password,
		DB:                       cfg.DB,
		Protocol:                 2,
		DisableIdentity:          true,
		MaintNotificationsConfig: noMaintNotifications(),
	}
}

func clusterOptions(cfg Config, addrs []string) *redis.ClusterOptions {
	return &redis.ClusterOptions{
		Addrs:                    addrs,
		Password:                 cfg.Password,
		Protocol:                 2,
		DisableIdentity:          true,
		MaintNotificationsConfig: noMaintNotifications(),
	}
}

func noMaintNotifications() *maintnotifications.Config {
	return &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
}

func newConsumerName() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "c-" + hex.EncodeToString(b[:])
}

// readError wraps an error from a read: ErrClosed once p is closed, and
// timebox.ErrUnavailable for a connection that failed (a read changes
// nothing, so it is safe to retry).
func (p *Persistence) readError(op string, err error) error {
	var rerr redis.Error
	switch {
	case err == nil:
		return nil
	case p.closed.Load() || errors.Is(err, redis.ErrClosed):
		return fmt.Errorf("redis: %s: %w", op, timebox.ErrClosed)
	case errors.As(err, &rerr), errors.Is(err, context.Canceled),
		errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("redis: %s: %w", op, err)
	}
	return fmt.Errorf("redis: %s: %w: %w", op, timebox.ErrUnavailable, err)
}

// writeError classifies an error from a write that was sent at most once.
// A server reply, a refused dial or a pool timeout means the write did not
// happen; the last two are timebox.ErrUnavailable (nothing was sent). Any
// other failure (a connection lost while waiting for the reply, a context
// done mid-call) may come after the script ran, so it is
// timebox.ErrUnknownOutcome, still matching the cause.
func (p *Persistence) writeError(op string, err error) error {
	var rerr redis.Error
	var nerr *net.OpError
	switch {
	case err == nil:
		return nil
	case p.closed.Load() || errors.Is(err, redis.ErrClosed):
		return fmt.Errorf("redis: %s: %w", op, timebox.ErrClosed)
	case errors.As(err, &rerr):
		return fmt.Errorf("redis: %s: %w", op, err)
	case errors.Is(err, redis.ErrPoolTimeout),
		errors.As(err, &nerr) && nerr.Op == "dial":
		return fmt.Errorf("redis: %s: %w: %w", op, timebox.ErrUnavailable, err)
	}
	return fmt.Errorf("redis: %s: %w: %w", op, timebox.ErrUnknownOutcome, err)
}
