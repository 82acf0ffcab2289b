package redis

import (
	"bytes"
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
	"github.com/kode4food/timebox/internal/closer"
)

// Persistence is a timebox.Backend and timebox.Archiver on one Redis
// server or cluster. It is safe for concurrent use; many Persistence
// values, in one process or many, may share a Prefix.
type Persistence struct {
	client   redis.UniversalClient
	blocker  redis.UniversalClient // its own pool for XREAD BLOCK
	config   Config
	keys     keys
	consumer string
	ready    chan struct{}
	closed   closer.Flag
	grouped  atomic.Bool
	consumed atomic.Bool
	// perEntry is the events per feed entry the last read saw, lastEntry
	// the entry it ended in.
	perEntry  atomic.Int64
	lastEntry atomic.Pointer[entryEnd]
	replies   chan *bytes.Buffer // reply buffers of xrange kept for reuse
	ahead     *readAhead         // feed reads sent ahead of their readers
	// claimFrom is where the next XAUTOCLAIM starts (a stream ID string).
	claimFrom atomic.Value
}

// connectTimeout bounds what NewPersistence waits for the server.
const connectTimeout = 10 * time.Second

var (
	_ timebox.Backend  = (*Persistence)(nil)
	_ timebox.Archiver = (*Persistence)(nil)
	_ timebox.Feeder   = (*Persistence)(nil)

	_ timebox.ConsumerBackend = (*Persistence)(nil)
)

// NewPersistence lays cfgs over DefaultConfig, validates the result, then
// connects, checks the server answers (and accepts the user and password)
// and loads the scripts. A cluster is used when Addr lists several addresses or the
// one server has cluster mode on; a cluster needs Shard (ErrShardRequired)
// and DB 0 (ErrInvalidDB). It returns the Config's validation error, or an
// error when the server cannot be reached or refuses the connection.
func NewPersistence(cfgs ...Config) (*Persistence, error) {
	cfg := timebox.Configure(DefaultConfig(), cfgs...)
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg, _ = cfg.resolve()
	bridgeLogs(cfg.Logger)
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	client, err := connect(ctx, cfg)
	if err != nil {
		return nil, err
	}
	p := &Persistence{
		client:   client,
		blocker:  blockingClient(client, cfg),
		config:   cfg,
		keys:     newKeys(cfg),
		consumer: newConsumerName(),
		ready:    make(chan struct{}),
		replies:  make(chan *bytes.Buffer, keptReplies),
		ahead:    newReadAhead(),
	}
	if err := p.loadScripts(ctx); err != nil {
		_ = client.Close()
		_ = p.blocker.Close()
		return nil, err
	}
	close(p.ready)
	return p, nil
}

// Config returns the configuration in use, defaults applied and a URL in
// Addr resolved into its fields.
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
	p.ahead.close()
	_ = p.blocker.Close()
	return p.client.Close()
}

// checkOpen returns timebox.ErrClosed once p is closed (closer.Flag).
func (p *Persistence) checkOpen() error {
	return p.closed.Check()
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

// blockingClient returns a client like c, with a pool of its own, for the
// feed's XREAD BLOCK: a waiting reader holds a connection, and must not
// hold one an append needs. It dials nothing until used.
func blockingClient(c redis.UniversalClient, cfg Config) redis.UniversalClient {
	if _, ok := c.(*redis.ClusterClient); ok {
		return redis.NewClusterClient(clusterOptions(cfg, cfg.addrs()))
	}
	return redis.NewClient(clientOptions(cfg))
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
		Username:                 cfg.Username,
		Password:                 cfg.Password,
		DB:                       cfg.DB,
		ClientName:               cfg.ClientName,
		TLSConfig:                cfg.TLS,
		DialTimeout:              cfg.DialTimeout,
		ReadTimeout:              cfg.ReadTimeout,
		WriteTimeout:             cfg.WriteTimeout,
		PoolSize:                 cfg.PoolSize,
		Protocol:                 2,
		DisableIdentity:          true,
		MaintNotificationsConfig: noMaintNotifications(),
	}
}

func clusterOptions(cfg Config, addrs []string) *redis.ClusterOptions {
	return &redis.ClusterOptions{
		Addrs:                    addrs,
		Username:                 cfg.Username,
		Password:                 cfg.Password,
		ClientName:               cfg.ClientName,
		TLSConfig:                cfg.TLS,
		DialTimeout:              cfg.DialTimeout,
		ReadTimeout:              cfg.ReadTimeout,
		WriteTimeout:             cfg.WriteTimeout,
		PoolSize:                 cfg.PoolSize,
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
// timebox.ErrUnavailable for a connection that failed or a cluster that
// redirected or refused the call while a slot moved (a read changes
// nothing, so it is safe to retry).
func (p *Persistence) readError(op string, err error) error {
	var rerr redis.Error
	switch {
	case err == nil:
		return nil
	case p.closed.Load() || errors.Is(err, redis.ErrClosed):
		return fmt.Errorf("redis: %s: %w", op, timebox.ErrClosed)
	case rerouted(err):
		return fmt.Errorf("redis: %s: %w: %w", op, timebox.ErrUnavailable, err)
	case errors.As(err, &rerr), errors.Is(err, context.Canceled),
		errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("redis: %s: %w", op, err)
	}
	return fmt.Errorf("redis: %s: %w: %w", op, timebox.ErrUnavailable, err)
}

// writeError classifies an error from a write that was sent at most once.
// It is the one place that decides what such an error means:
//
//   - a server error reply raised inside the script (Redis appends
//     "script: <sha>, on @user_script:<line>" to those) may follow the
//     script's first write, since a Lua error does not undo writes: the
//     outcome is unknown;
//   - any other server reply (a routing reply such as MOVED, ASK,
//     TRYAGAIN or CLUSTERDOWN, NOSCRIPT, an auth or OOM refusal, or the
//     script's own "ERR timebox ..." replies, all given before its first
//     write): the write did not happen;
//   - a refused dial or a pool timeout: nothing was sent, and the error
//     matches timebox.ErrUnavailable, which the Store retries;
//   - anything else (a connection lost or timed out while waiting for the
//     reply, a context done mid-call): the write may have happened.
//
// An unknown outcome matches timebox.ErrUnknownOutcome and still wraps
// the cause; after Close every error matches timebox.ErrClosed.
func (p *Persistence) writeError(op string, err error) error {
	var rerr redis.Error
	var nerr *net.OpError
	switch {
	case err == nil:
		return nil
	case p.closed.Load() || errors.Is(err, redis.ErrClosed):
		return fmt.Errorf("redis: %s: %w", op, timebox.ErrClosed)
	case errors.As(err, &rerr) && inScript(rerr):
	case errors.As(err, &rerr):
		return fmt.Errorf("redis: %s: %w", op, err)
	case errors.Is(err, redis.ErrPoolTimeout),
		errors.As(err, &nerr) && nerr.Op == "dial":
		return fmt.Errorf("redis: %s: %w: %w", op, timebox.ErrUnavailable, err)
	}
	return fmt.Errorf("redis: %s: %w: %w", op, timebox.ErrUnknownOutcome, err)
}

// inScript reports whether a server error was raised while a script ran
// (by a redis.call or the Lua runtime), rather than before it started or by
// the script's own redis.error_reply.
func inScript(err redis.Error) bool {
	return strings.Contains(err.Error(), "@user_script:")
}
