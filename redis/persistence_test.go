package redis

import (
	"context"
	"crypto/tls"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/conformance"
	"github.com/kode4food/timebox/internal/testlog"
	"github.com/kode4food/timebox/internal/testserver"
)

func TestConfigDefaults(t *testing.T) {
	cfg := DefaultConfig()
	require.Equal(t, DefaultAddr, cfg.Addr)
	require.Equal(t, DefaultPrefix, cfg.Prefix)
	require.Equal(t, DefaultDB, cfg.DB)
	require.Equal(t, DefaultMinIdle, cfg.MinIdle)
	require.NoError(t, cfg.Validate())

	require.Equal(t, DefaultClientName, cfg.ClientName)
	require.NoError(t, cfg.Validate())

	over := cfg.With(Config{Prefix: "p", DB: 3, Shard: "s"})
	require.Equal(t, Config{
		Addr: DefaultAddr, Prefix: "p", DB: 3, Shard: "s", MinIdle: DefaultMinIdle,
		ClientName: DefaultClientName,
	}, over)

	tc := &tls.Config{MinVersion: tls.VersionTLS13}
	log := slog.New(slog.DiscardHandler)
	conn := Config{
		Username: "u", TLS: tc, ClientName: "n", DialTimeout: 1, ReadTimeout: 2,
		WriteTimeout: 3, PoolSize: 4, Logger: log,
	}
	over = cfg.With(conn)
	require.Equal(t, "u", over.Username)
	require.Same(t, tc, over.TLS)
	require.Equal(t, "n", over.ClientName)
	require.EqualValues(t, 1, over.DialTimeout)
	require.EqualValues(t, 2, over.ReadTimeout)
	require.EqualValues(t, 3, over.WriteTimeout)
	require.Equal(t, 4, over.PoolSize)
	require.Same(t, log, over.Logger)
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg Config
		err error
	}{
		{Config{DB: -1}, ErrInvalidDB},
		{Config{Shard: "a{b"}, ErrInvalidShard},
		{Config{Shard: "a}b"}, ErrInvalidShard},
		{Config{Shard: "a:b"}, ErrInvalidShard},
		{Config{Prefix: "app:m:x"}, ErrInvalidPrefix},
		{Config{Prefix: "app:e"}, ErrInvalidPrefix},
		{Config{Prefix: "app::c:"}, ErrInvalidPrefix},
		{Config{Prefix: "app:{s}"}, ErrInvalidPrefix},
		{Config{MinIdle: -1}, ErrInvalidMinIdle},
		{Config{Addr: "127.0.0.1:6379,"}, ErrInvalidAddr},
		{Config{Addr: "127.0.0.1"}, ErrInvalidAddr},
		{Config{Addr: "127.0.0.1:6379,127.0.0.1"}, ErrInvalidAddr},
		{Config{Addr: "localhost:"}, ErrInvalidAddr},
		{Config{Addr: "http://127.0.0.1:6379"}, ErrInvalidAddr},
		{Config{Addr: "redis://127.0.0.1:6379?dial_timeout=1s"}, ErrInvalidAddr},
		{Config{Addr: "redis://127.0.0.1:6379/x"}, ErrInvalidAddr},
		{Config{Addr: "redis://a:1,redis://b:2"}, ErrInvalidAddr},
		{Config{Addr: "redis://127.0.0.1:6379/-1"}, ErrInvalidDB},
		{Config{Addr: "127.0.0.1:abc"}, ErrInvalidAddr},
		{Config{Addr: "127.0.0.1:99999"}, ErrInvalidAddr},
		{Config{Addr: "127.0.0.1:-1"}, ErrInvalidAddr},
		{Config{Addr: "127.0.0.1:0"}, ErrInvalidAddr},
		{Config{Addr: "redis://127.0.0.1:99999"}, ErrInvalidAddr},
		{Config{DialTimeout: -1}, ErrInvalidTimeout},
		{Config{ReadTimeout: -1}, ErrInvalidTimeout},
		{Config{WriteTimeout: -1}, ErrInvalidTimeout},
		{Config{PoolSize: -1}, ErrInvalidPoolSize},
		{Config{ClientName: "a b"}, ErrInvalidClientName},
		{Config{ClientName: "a\nb"}, ErrInvalidClientName},
	} {
		require.ErrorIs(t, DefaultConfig().With(tc.cfg).Validate(), tc.err)
		p, err := NewPersistence(tc.cfg)
		require.ErrorIs(t, err, tc.err)
		require.Nil(t, p)
	}
	// Prefixes that reach no other store's keys are valid.
	for _, prefix := range []string{"app", "app:timebox", "a:b:c2", "app:", "a{b}", "app:me"} {
		require.NoError(t, DefaultConfig().With(Config{Prefix: prefix}).Validate(), prefix)
	}
}

// A URL in Addr fills the fields the Config leaves zero.
func TestConfigURL(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want Config
		tls  bool
	}{
		{
			Config{Addr: "redis://u:p@example.com:7000/2"},
			Config{Addr: "example.com:7000", Username: "u", Password: "p", DB: 2}, false,
		},
		{
			Config{Addr: "rediss://example.com"},
			Config{Addr: "example.com:6379"}, true,
		},
		{
			Config{Addr: "redis://:p@[::1]:7000", Password: "mine", DB: 1},
			Config{Addr: "[::1]:7000", Password: "mine", DB: 1}, false,
		},
	} {
		cfg := DefaultConfig().With(tc.cfg)
		require.NoError(t, cfg.Validate(), tc.cfg.Addr)
		got, err := cfg.resolve()
		require.NoError(t, err)
		require.Equal(t, tc.want.Addr, got.Addr)
		require.Equal(t, tc.want.Username, got.Username)
		require.Equal(t, tc.want.Password, got.Password)
		require.Equal(t, tc.want.DB, got.DB)
		require.Equal(t, tc.tls, got.TLS != nil, tc.cfg.Addr)
		if tc.tls {
			require.Equal(t, "example.com", got.TLS.ServerName)
		}
	}
}

// A URL in Addr connects like the fields it stands for.
func TestOpenURL(t *testing.T) {
	addr := startServer(t, "s3cret")
	p := newPersistence(t, Config{Addr: "redis://:s3cret@" + addr + "/3"})
	require.Equal(t, addr, p.Config().Addr)
	require.Equal(t, 3, p.Config().DB)
	ctx := context.Background()
	id := timebox.NewAggregateID("url")
	require.NoError(t, p.Append(ctx, timebox.AppendRequest{
		ID: id, Events: []*timebox.Event{event("x")},
	}))
	n, err := p.client.ZCard(ctx, p.keys.aggregate(id).events).Result()
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	info, err := p.client.ClientInfo(ctx).Result()
	require.NoError(t, err)
	require.Equal(t, 3, info.DB)
	require.Equal(t, DefaultClientName, info.Name)
}

// An address without a port is refused by Validate at once, not after
// go-redis has spent its dial retries on it.
func TestAddrWithoutPort(t *testing.T) {
	start := time.Now()
	p, err := NewPersistence(Config{Addr: "127.0.0.1"})
	require.ErrorIs(t, err, ErrInvalidAddr)
	require.ErrorContains(t, err, "port")
	require.Nil(t, p)
	require.Less(t, time.Since(start), time.Second)
}

// go-redis's own lines ("failed to dial ...") go to the Config.Logger at
// debug level, not to stderr.
func TestGoRedisLogsToSlog(t *testing.T) {
	var buf testlog.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	port := freePort(t)
	p, err := NewPersistence(Config{Addr: "127.0.0.1:" + itoa(port), Logger: log})
	require.Error(t, err)
	require.Nil(t, p)
	out := buf.String()
	require.Contains(t, out, "failed to dial")
	require.Contains(t, out, "level=DEBUG")
	require.Contains(t, out, "source=go-redis")
}

func TestOpenUnreachable(t *testing.T) {
	port := freePort(t)
	p, err := NewPersistence(Config{Addr: "127.0.0.1:" + itoa(port)})
	require.Error(t, err)
	require.Nil(t, p)
}

func TestPassword(t *testing.T) {
	addr := startServer(t, "s3cret")

	for _, pw := range []string{"", "wrong"} {
		p, err := NewPersistence(Config{Addr: addr, Password: pw})
		require.Error(t, err, "password %q", pw)
		require.Nil(t, p)
	}

	st := newStore(t, Config{Addr: addr, Password: "s3cret"}, timebox.Config{})
	id := timebox.NewAggregateID("auth")
	require.NoError(t, st.AppendEvents(id, 0, []*timebox.Event{event("in")}))
	evs, err := st.GetEvents(id, 0)
	require.NoError(t, err)
	require.Len(t, evs, 1)
}

func TestDBSelection(t *testing.T) {
	addr := testserver.RedisAddr(t)
	prefix := testserver.Prefix(t)
	st0 := newStore(t, Config{Addr: addr, Prefix: prefix}, timebox.Config{})
	st1 := newStore(t, Config{Addr: addr, Prefix: prefix, DB: 1}, timebox.Config{})
	id := timebox.NewAggregateID("db")

	require.NoError(t, st1.AppendEvents(id, 0, []*timebox.Event{event("one")}))
	evs, err := st0.GetEvents(id, 0)
	require.NoError(t, err)
	require.Empty(t, evs, "DB 0 sees DB 1's events")
	require.NoError(t, st0.AppendEvents(id, 0, []*timebox.Event{event("zero")}))

	raw := redis.NewClient(&redis.Options{
		Addr: addr, DB: 1, DisableIdentity: true,
		MaintNotificationsConfig: noMaintNotifications(),
	})
	defer func() { _ = raw.Close() }()
	key := newKeys(Config{Prefix: prefix}).aggregate(id).events
	n, err := raw.ZCard(context.Background(), key).Result()
	require.NoError(t, err)
	require.EqualValues(t, 1, n)

	evs, err = st1.GetEvents(id, 0)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	require.JSONEq(t, `"one"`, string(evs[0].Data))
}

func TestClosed(t *testing.T) {
	p := newPersistence(t, Config{})
	require.NoError(t, p.Close())
	require.NoError(t, p.Close())
	ctx := context.Background()
	id := timebox.NewAggregateID("closed")
	require.ErrorIs(t, p.Append(ctx, timebox.AppendRequest{ID: id}), timebox.ErrClosed)
	_, err := p.LoadEvents(ctx, id, 0)
	require.ErrorIs(t, err, timebox.ErrClosed)
	_, err = p.ListAggregates(ctx, nil)
	require.ErrorIs(t, err, timebox.ErrClosed)
}

func itoa(n int) string {
	return strconv.Itoa(n)
}

// Several Persistence values on one Prefix, as several processes would
// have, race Exec on one aggregate; the log must hold exactly the
// acknowledged events.
func TestRaceSeveralPersistences(t *testing.T) {
	cfg := testConfig(t, Config{})
	stores := conformance.Stores(t, 3, timebox.Config{MaxRetries: 1000}, opener(cfg))
	conformance.RaceExec(t, stores, 4, 25)
}
