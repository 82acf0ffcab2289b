package redis

import (
	"context"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/conformance"
	"github.com/kode4food/timebox/internal/testserver"
)

func TestConfigDefaults(t *testing.T) {
	cfg := DefaultConfig()
	require.Equal(t, DefaultAddr, cfg.Addr)
	require.Equal(t, DefaultPrefix, cfg.Prefix)
	require.Equal(t, DefaultDB, cfg.DB)
	require.Equal(t, DefaultMinIdle, cfg.MinIdle)
	require.NoError(t, cfg.Validate())

	over := cfg.With(Config{Prefix: "p", DB: 3, Shard: "s"})
	require.Equal(t, Config{
		Addr: DefaultAddr, Prefix: "p", DB: 3, Shard: "s", MinIdle: DefaultMinIdle,
	}, over)
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
		{Config{MinIdle: -1}, ErrInvalidMinIdle},
		{Config{Addr: "127.0.0.1:6379,"}, ErrInvalidAddr},
	} {
		require.ErrorIs(t, DefaultConfig().With(tc.cfg).Validate(), tc.err)
		p, err := NewPersistence(tc.cfg)
		require.ErrorIs(t, err, tc.err)
		require.Nil(t, p)
	}
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
	stores := make([]*timebox.Store, 3)
	for i := range stores {
		p, err := NewPersistence(cfg)
		require.NoError(t, err)
		st, err := p.NewStore(timebox.Config{MaxRetries: 1000})
		require.NoError(t, err)
		t.Cleanup(func() { _ = st.Close() })
		stores[i] = st
	}
	conformance.RaceExec(t, stores, 4, 25)
}
