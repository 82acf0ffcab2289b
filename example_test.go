package timebox_test

import (
	"context"
	"fmt"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/memory"
)

type Account struct {
	Balance int `json:"balance"`
}

var accountAppliers = timebox.Appliers[Account]{
	"deposited": timebox.MakeApplier(
		func(a Account, _ *timebox.Event, amount int) Account {
			a.Balance += amount
			return a
		},
	),
}

func deposit(amount int) timebox.Command[Account] {
	return func(_ Account, ag *timebox.Aggregator[Account]) error {
		if amount <= 0 {
			return fmt.Errorf("deposit must be positive, got %d", amount)
		}
		return timebox.Raise(ag, "deposited", amount)
	}
}

func ExampleNewStore() {
	store, err := timebox.NewStore(memory.NewPersistence(), timebox.Config{
		MaxRetries: 4,
	})
	if err != nil {
		panic(err)
	}
	defer func() { _ = store.Close() }()

	fmt.Println(store.Config().MaxRetries, store.Config().CacheSize)
	// Output: 4 128
}

func ExampleExecutor_Exec() {
	store, _ := memory.NewPersistence().NewStore(timebox.Config{})
	defer func() { _ = store.Close() }()

	accounts := timebox.NewExecutor(store,
		func() Account { return Account{} }, accountAppliers,
	)
	id := timebox.NewAggregateID("account", "42")
	_, _ = accounts.Exec(id, deposit(30))
	acct, _ := accounts.Exec(id, deposit(12))
	fmt.Println("balance:", acct.Balance)

	_, err := accounts.Exec(id, deposit(-5))
	fmt.Println("error:", err)

	evs, _ := store.GetEvents(id, 0)
	for _, ev := range evs {
		fmt.Println(ev.Sequence, ev.Type, string(ev.Data))
	}
	// Output:
	// balance: 42
	// error: deposit must be positive, got -5
	// 0 deposited 30
	// 1 deposited 12
}

func ExampleStore_ListAggregatesByStatus() {
	indexer := func(evs []*timebox.Event) []*timebox.Index {
		status := "funded"
		return []*timebox.Index{{
			Status: &status,
			Labels: map[string]string{"currency": "EUR"},
		}}
	}
	store, _ := memory.NewPersistence().NewStore(timebox.Config{Indexer: indexer})
	defer func() { _ = store.Close() }()

	accounts := timebox.NewExecutor(store,
		func() Account { return Account{} }, accountAppliers,
	)
	for _, n := range []timebox.ID{"2", "1"} {
		_, _ = accounts.Exec(timebox.NewAggregateID("account", n), deposit(10))
	}

	funded, _ := store.ListAggregatesByStatus("funded")
	fmt.Println("funded:", len(funded))
	currencies, _ := store.ListLabelValues("currency")
	fmt.Println("currencies:", currencies)
	ids, _ := store.ListAggregates(timebox.NewAggregateID("account"))
	fmt.Println("accounts:", ids)
	// Output:
	// funded: 2
	// currencies: [EUR]
	// accounts: [["account","1"] ["account","2"]]
}

func ExampleWithMetadata() {
	store, _ := memory.NewPersistence().NewStore(timebox.Config{})
	defer func() { _ = store.Close() }()
	accounts := timebox.NewExecutor(store,
		func() Account { return Account{} }, accountAppliers,
	)
	id := timebox.NewAggregateID("account", "7")

	// Say, in an HTTP handler: every event this request raises carries
	// its correlation ID and actor.
	ctx := timebox.WithMetadata(context.Background(), timebox.Metadata{
		"correlation": "req-81", "actor": "alice",
	})
	_, _ = accounts.ExecContext(ctx, id, deposit(5))

	evs, _ := store.GetEvents(id, 0)
	fmt.Println(evs[0].Metadata["correlation"], evs[0].Metadata["actor"])
	fmt.Println("ID set:", evs[0].ID != "")
	// Output:
	// req-81 alice
	// ID set: true
}

func ExampleWithCommandID() {
	store, _ := memory.NewPersistence().NewStore(timebox.Config{})
	defer func() { _ = store.Close() }()
	accounts := timebox.NewExecutor(store,
		func() Account { return Account{} }, accountAppliers,
	)
	id := timebox.NewAggregateID("account", "9")

	// A client sends the same request twice (say, it timed out waiting
	// for the first reply); both carry its idempotency key.
	for range 2 {
		ctx := timebox.WithCommandID(context.Background(), "deposit-req-1")
		acct, err := accounts.ExecContext(ctx, id, deposit(10))
		fmt.Println("balance:", acct.Balance, "error:", err)
	}
	evs, _ := store.GetEvents(id, 0)
	fmt.Println("events:", len(evs))
	// Output:
	// balance: 10 error: <nil>
	// balance: 10 error: <nil>
	// events: 1
}
