package timebox_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/memory"
)

// Snapshots: an Executor saves one when the events after the last
// snapshot outweigh it (Config.SnapshotRatio); SaveSnapshot saves one on
// demand. A load then reads the snapshot and only the events after it.
func ExampleExecutor_SaveSnapshot() {
	store, _ := memory.NewPersistence().NewStore(timebox.Config{})
	defer func() { _ = store.Close() }()
	accounts := timebox.NewExecutor(store,
		func() Account { return Account{} }, accountAppliers)
	id := timebox.NewAggregateID("account", "7")
	for range 3 {
		_, _ = accounts.Exec(id, deposit(10))
	}

	if err := accounts.SaveSnapshot(id); err != nil {
		panic(err)
	}
	var acct Account
	res, _ := store.GetSnapshot(id, &acct)
	fmt.Println("snapshot at", res.NextSequence, "balance", acct.Balance,
		"events after it:", len(res.AdditionalEvents))
	// Output: snapshot at 3 balance 30 events after it: 0
}

// Handling a version conflict by hand: AppendEvents at a stale sequence
// writes nothing and returns the events the caller missed. (Executor.Exec
// does this for you: it folds them in and runs the command again.)
func ExampleVersionConflictError() {
	store, _ := memory.NewPersistence().NewStore(timebox.Config{})
	defer func() { _ = store.Close() }()
	id := timebox.NewAggregateID("account", "8")
	ev := func(amount string) []*timebox.Event {
		return []*timebox.Event{{Type: "deposited", Data: []byte(amount)}}
	}
	_ = store.AppendEvents(id, 0, ev("5"))

	err := store.AppendEvents(id, 0, ev("9")) // stale: the head is 1
	var vc *timebox.VersionConflictError
	if errors.As(err, &vc) {
		fmt.Println(err)
		fmt.Println("missed:", string(vc.NewEvents[0].Data))
		err = store.AppendEvents(id, vc.ActualSequence, ev("9"))
	}
	fmt.Println("retried:", err)
	// Output:
	// version conflict: expected sequence 0, but at 1 (1 new events)
	// missed: 5
	// retried: <nil>
}

// An Indexer derives a status and labels from each appended batch; they
// are written atomically with the events.
func ExampleIndexer() {
	indexer := func(evs []*timebox.Event) []*timebox.Index {
		var res []*timebox.Index
		for _, ev := range evs {
			switch ev.Type {
			case "opened":
				open := "open"
				region, _ := timebox.GetEventValue[string](ev)
				res = append(res, &timebox.Index{
					Status: &open, Labels: map[string]string{"region": region},
				})
			case "closed":
				closed := "closed"
				res = append(res, &timebox.Index{Status: &closed})
			}
		}
		return res
	}
	store, _ := memory.NewPersistence().NewStore(timebox.Config{Indexer: indexer})
	defer func() { _ = store.Close() }()

	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, region := range []string{`"eu"`, `"us"`, `"eu"`} {
		id := timebox.NewAggregateID("ticket", timebox.ID(fmt.Sprint(i)))
		_ = store.AppendEvents(id, 0, []*timebox.Event{
			{Type: "opened", Data: []byte(region), Timestamp: at.Add(time.Duration(i) * time.Minute)},
		})
	}
	_ = store.AppendEvents(timebox.NewAggregateID("ticket", "1"), 1,
		[]*timebox.Event{{Type: "closed", Data: []byte("{}"), Timestamp: at.Add(time.Hour)}})

	open, _ := store.ListAggregatesByStatus("open")
	for _, e := range open {
		fmt.Println("open:", e.ID, "since", e.Timestamp.Format(time.TimeOnly))
	}
	status, _ := store.GetAggregateStatus(timebox.NewAggregateID("ticket", "1"))
	fmt.Println("ticket 1:", status)
	eu, _ := store.ListAggregatesByLabel("region", "eu")
	fmt.Println("eu:", eu)
	// Output:
	// open: ["ticket","0"] since 00:00:00
	// open: ["ticket","2"] since 00:02:00
	// ticket 1: closed
	// eu: [["ticket","0"] ["ticket","2"]]
}

// Paging a status: each page's Next is the cursor of the one after it,
// "" after the last.
func ExampleStore_ListAggregatesByStatusPage() {
	open := "open"
	store, _ := memory.NewPersistence().NewStore(timebox.Config{
		Indexer: func([]*timebox.Event) []*timebox.Index {
			return []*timebox.Index{{Status: &open}}
		},
	})
	defer func() { _ = store.Close() }()
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 5 {
		id := timebox.NewAggregateID("order", timebox.ID(fmt.Sprint(i)))
		_ = store.AppendEvents(id, 0, []*timebox.Event{
			{Type: "placed", Data: []byte("{}"), Timestamp: at.Add(time.Duration(i))},
		})
	}

	ctx := context.Background()
	var after timebox.Cursor
	for n := 1; ; n++ {
		page, err := store.ListAggregatesByStatusPage(ctx, "open", after, 2)
		if err != nil {
			panic(err)
		}
		var ids []timebox.AggregateID
		for _, e := range page.Entries {
			ids = append(ids, e.ID)
		}
		fmt.Println("page", n, ids)
		if after = page.Next; after == "" {
			break
		}
	}
	// Output:
	// page 1 [["order","0"] ["order","1"]]
	// page 2 [["order","2"] ["order","3"]]
	// page 3 [["order","4"]]
}

// Archiving moves an aggregate out of live storage into an archive
// record; a consumer handles each record at least once.
func ExampleStore_ConsumeArchive() {
	store, _ := memory.NewPersistence().NewStore(timebox.Config{})
	defer func() { _ = store.Close() }()
	accounts := timebox.NewExecutor(store,
		func() Account { return Account{} }, accountAppliers)
	id := timebox.NewAggregateID("account", "closed-1")
	_, _ = accounts.Exec(id, deposit(10))
	_, _ = accounts.Exec(id, deposit(5))

	if err := store.Archive(id); err != nil {
		panic(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := store.ConsumeArchive(ctx, func(_ context.Context, rec *timebox.ArchiveRecord) error {
		// Write rec to cold storage here; an error keeps the record.
		fmt.Println("archived", rec.AggregateID, "with", len(rec.Events), "events")
		return nil
	})
	fmt.Println("consume:", err)
	live, _ := store.ListAggregates(nil)
	fmt.Println("live:", live)
	// Output:
	// archived ["account","closed-1"] with 2 events
	// consume: <nil>
	// live: []
}
