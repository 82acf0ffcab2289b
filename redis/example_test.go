package redis_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/testserver"
	"github.com/kode4food/timebox/redis"
)

type Account struct {
	Balance int  `json:"balance"`
	Closed  bool `json:"closed"`
}

var accountAppliers = timebox.Appliers[Account]{
	"deposited": timebox.MakeApplier(
		func(a Account, _ *timebox.Event, amount int) Account {
			a.Balance += amount
			return a
		},
	),
	"closed": func(a Account, _ *timebox.Event) Account {
		a.Closed = true
		return a
	},
}

// accountStatus indexes an account as "open" until it is closed.
func accountStatus(evs []*timebox.Event) []*timebox.Index {
	status := "open"
	if evs[len(evs)-1].Type == "closed" {
		status = "closed"
	}
	return []*timebox.Index{{Status: &status}}
}

// Example opens a store on the Redis server at TIMEBOX_REDIS_ADDR
// (default 127.0.0.1:6379; a rediss:// URL works too) under a fresh
// Prefix, runs commands on an account, queries the status index, then
// archives the account and consumes the archive record.
func Example() {
	addr := os.Getenv("TIMEBOX_REDIS_ADDR")
	if addr == "" {
		addr = redis.DefaultAddr
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	p, err := redis.NewPersistence(redis.Config{
		Addr:   addr,
		Prefix: "timebox-example-" + hex.EncodeToString(b[:]),
	})
	if err != nil {
		fmt.Println("open:", err)
		return
	}
	store, err := p.NewStore(timebox.Config{Indexer: accountStatus})
	if err != nil {
		fmt.Println("store:", err)
		return
	}
	defer func() { _ = store.Close() }()

	accounts := timebox.NewExecutor(store,
		func() Account { return Account{} }, accountAppliers,
	)
	id := timebox.NewAggregateID("account", "42")
	for _, amount := range []int{30, 40} {
		_, _ = accounts.Exec(id, func(_ Account, ag *timebox.Aggregator[Account]) error {
			return timebox.Raise(ag, "deposited", amount)
		})
	}
	acct, _ := accounts.Exec(id, func(a Account, ag *timebox.Aggregator[Account]) error {
		if a.Balance < 50 {
			return fmt.Errorf("balance %d too low to close", a.Balance)
		}
		return timebox.Raise(ag, "closed", struct{}{})
	})
	fmt.Println("balance:", acct.Balance, "closed:", acct.Closed)

	closed, _ := store.ListAggregatesByStatus("closed")
	for _, e := range closed {
		fmt.Println("closed account:", e.ID)
	}

	_ = store.Archive(id)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = store.ConsumeArchive(ctx, func(_ context.Context, r *timebox.ArchiveRecord) error {
		fmt.Println("archived:", r.AggregateID, len(r.Events), "events")
		return nil
	})
	ids, _ := store.ListAggregates(nil)
	fmt.Println("live accounts:", len(ids))
}

const exampleOutput = `balance: 70 closed: true
closed account: ["account","42"]
archived: ["account","42"] 3 events
live accounts: 0
`

// TestExample runs Example against the test server (go test runs an
// Example only when it has an Output comment, which would fail without a
// server) and checks what it prints; then removes what it left behind.
func TestExample(t *testing.T) {
	addr := testserver.RedisAddr(t)
	t.Setenv("TIMEBOX_REDIS_ADDR", addr)
	r, w, err := os.Pipe()
	require.NoError(t, err)
	stdout := os.Stdout
	os.Stdout = w
	func() {
		defer func() { os.Stdout = stdout }()
		Example()
	}()
	require.NoError(t, w.Close())
	var out bytes.Buffer
	_, err = io.Copy(&out, r)
	require.NoError(t, err)
	require.Equal(t, exampleOutput, out.String())

	c := goredis.NewClient(&goredis.Options{
		Addr: addr, DisableIdentity: true,
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
	})
	defer func() { _ = c.Close() }()
	ctx := context.Background()
	iter := c.Scan(ctx, 0, "timebox-example-*", 100).Iterator()
	for iter.Next(ctx) {
		require.NoError(t, c.Del(ctx, iter.Val()).Err())
	}
	require.NoError(t, iter.Err())
}
