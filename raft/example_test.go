package raft_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/raft"
)

// A single-node cluster in a temporary directory. A real cluster lists its
// voters in Servers, the same list on every node.
func ExampleNewPersistence() {
	dir, err := os.MkdirTemp("", "timebox-raft-example-")
	if err != nil {
		panic(err)
	}
	defer func() { _ = os.RemoveAll(dir) }()

	published := make(chan []*timebox.Event, 16)
	p, err := raft.NewPersistence(raft.Config{
		LocalID: "node-1",
		Address: "127.0.0.1:0",
		DataDir: dir,
		// Publisher runs on its own goroutine, once per committed append.
		Publisher: func(evs ...*timebox.Event) { published <- evs },
	})
	if err != nil {
		panic(err)
	}
	store, err := p.NewStore(timebox.Config{})
	if err != nil {
		panic(err)
	}
	defer func() { _ = store.Close() }()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := store.WaitReady(ctx); err != nil {
		panic(err)
	}
	id := timebox.NewAggregateID("order", "1")
	err = store.AppendEvents(id, 0, []*timebox.Event{
		{Timestamp: time.Now(), Type: "order.created", Data: []byte(`{}`)},
	})
	if err != nil {
		panic(err)
	}
	evs, err := store.GetEvents(id, 0)
	if err != nil {
		panic(err)
	}
	fmt.Println(len(evs), evs[0].Type, p.Leader().ID)
	pub := <-published
	fmt.Println("published", len(pub), "event(s) of", pub[0].AggregateID)
	// Output:
	// 1 order.created node-1
	// published 1 event(s) of ["order","1"]
}
