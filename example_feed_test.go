package timebox_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/memory"
)

func ExampleStore_ReadAll() {
	store, _ := memory.NewPersistence().NewStore(timebox.Config{})
	defer func() { _ = store.Close() }()
	ex := timebox.NewExecutor(store, func() Account { return Account{} }, accountAppliers)
	_, _ = ex.Exec(timebox.NewAggregateID("account", "a"), deposit(10))
	_, _ = ex.Exec(timebox.NewAggregateID("account", "b"), deposit(5))
	_, _ = ex.Exec(timebox.NewAggregateID("account", "a"), deposit(7))

	// Page through the feed: each page starts after the last Position.
	var pos timebox.Position
	for {
		evs, err := store.ReadAll(context.Background(), pos, 2)
		if err != nil || len(evs) == 0 {
			break
		}
		for _, ev := range evs {
			fmt.Println(ev.AggregateID, ev.Sequence, string(ev.Data))
		}
		pos = evs[len(evs)-1].Position
	}
	// Output:
	// ["account","a"] 0 10
	// ["account","b"] 0 5
	// ["account","a"] 1 7
}

func ExampleStore_Consume() {
	store, _ := memory.NewPersistence().NewStore(timebox.Config{})
	defer func() { _ = store.Close() }()
	ex := timebox.NewExecutor(store, func() Account { return Account{} }, accountAppliers)
	_, _ = ex.Exec(timebox.NewAggregateID("account", "a"), deposit(10))
	_, _ = ex.Exec(timebox.NewAggregateID("account", "b"), deposit(5))

	// A read model of the total deposited, fed by a durable consumer.
	// This one stops after two events; a real one runs until its ctx
	// ends, and resumes from its checkpoint when started again.
	errDone := errors.New("done")
	total, seen := 0, 0
	err := store.Consume(context.Background(), "totals",
		func(_ context.Context, ev *timebox.Event) error {
			amount, err := timebox.GetEventValue[int](ev)
			if err != nil {
				return err
			}
			total += amount
			if seen++; seen == 2 {
				return errDone
			}
			return nil
		},
		timebox.WithEventTypes("deposited"),
	)
	fmt.Println(errors.Is(err, errDone), total)

	list, _ := store.Consumers(context.Background())
	fmt.Println(list[0].Name, list[0].Partitions[0].Checkpoint)
	// Output:
	// true 15
	// totals 1.0
}
