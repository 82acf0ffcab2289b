package memory_test

import (
	"context"
	"fmt"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/memory"
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

// Example opens a store in process memory, runs commands on an account,
// queries the status index, then archives the account and consumes the
// archive record.
func Example() {
	store, err := memory.NewPersistence().NewStore(timebox.Config{
		Indexer: accountStatus,
	})
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
	acct, err := accounts.Exec(id, func(a Account, ag *timebox.Aggregator[Account]) error {
		if a.Balance < 50 {
			return fmt.Errorf("balance %d too low to close", a.Balance)
		}
		return timebox.Raise(ag, "closed", struct{}{})
	})
	fmt.Println("balance:", acct.Balance, "closed:", acct.Closed, "err:", err)

	closed, _ := store.ListAggregatesByStatus("closed")
	for _, e := range closed {
		fmt.Println("closed account:", e.ID)
	}

	_ = store.Archive(id)
	_ = store.ConsumeArchive(context.Background(),
		func(_ context.Context, r *timebox.ArchiveRecord) error {
			fmt.Println("archived:", r.AggregateID, len(r.Events), "events")
			return nil
		},
	)
	ids, _ := store.ListAggregates(nil)
	fmt.Println("live accounts:", len(ids))
	// Output:
	// balance: 70 closed: true err: <nil>
	// closed account: ["account","42"]
	// archived: ["account","42"] 3 events
	// live accounts: 0
}
