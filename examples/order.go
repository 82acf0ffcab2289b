// Command examples runs an order's lifecycle through Timebox: create with
// items and a shipping address, confirm, ship, deliver. An Indexer keeps
// each order's status and its region label, and the run ends with the
// index reads and a read model of order totals fed by a durable consumer.
//
//	go run ./examples                    # memory, no set-up
//	go run ./examples -backend postgres  # or redis, raft
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/kode4food/timebox"
)

type (
	Item struct {
		SKU      string `json:"sku"`
		Quantity int    `json:"quantity"`
		Cents    int    `json:"cents"`
	}

	Address struct {
		Street string `json:"street"`
		City   string `json:"city"`
		Region string `json:"region"`
	}

	// Order is the state of one order, rebuilt from its events.
	Order struct {
		Status   string  `json:"status"`
		Items    []Item  `json:"items"`
		Address  Address `json:"address"`
		Tracking string  `json:"tracking,omitempty"`
	}

	Created struct {
		Items   []Item  `json:"items"`
		Address Address `json:"address"`
	}

	Shipped struct {
		Tracking string `json:"tracking"`
	}
)

const (
	OrderCreated   timebox.EventType = "order.created"
	OrderConfirmed timebox.EventType = "order.confirmed"
	OrderShipped   timebox.EventType = "order.shipped"
	OrderDelivered timebox.EventType = "order.delivered"
)

// Appliers fold events into an Order. Each returns a new value and never
// changes the one it is given.
var appliers = timebox.Appliers[*Order]{
	OrderCreated: timebox.MakeApplier(func(o *Order, _ *timebox.Event, c Created) *Order {
		return &Order{Status: "created", Items: c.Items, Address: c.Address}
	}),
	OrderConfirmed: withStatus("confirmed"),
	OrderShipped: timebox.MakeApplier(func(o *Order, _ *timebox.Event, s Shipped) *Order {
		res := *o
		res.Status, res.Tracking = "shipped", s.Tracking
		return &res
	}),
	OrderDelivered: withStatus("delivered"),
}

func withStatus(status string) timebox.Applier[*Order] {
	return func(o *Order, _ *timebox.Event) *Order {
		res := *o
		res.Status = status
		return &res
	}
}

// indexOrders keeps each order's status and its region label.
func indexOrders(evs []*timebox.Event) []*timebox.Index {
	var res []*timebox.Index
	for _, ev := range evs {
		status := strings.TrimPrefix(string(ev.Type), "order.")
		idx := &timebox.Index{Status: &status}
		if ev.Type == OrderCreated {
			if c, err := timebox.GetEventValue[Created](ev); err == nil {
				idx.Labels = map[string]string{"region": c.Address.Region}
			}
		}
		res = append(res, idx)
	}
	return res
}

var errWrongStatus = errors.New("order is in the wrong status")

func create(items []Item, addr Address) timebox.Command[*Order] {
	return func(o *Order, ag *timebox.Aggregator[*Order]) error {
		if o.Status != "" {
			return fmt.Errorf("%w: already %s", errWrongStatus, o.Status)
		}
		return timebox.Raise(ag, OrderCreated, Created{Items: items, Address: addr})
	}
}

// advance moves an order from one status to the next by raising typ.
func advance(from string, typ timebox.EventType, data any) timebox.Command[*Order] {
	return func(o *Order, ag *timebox.Aggregator[*Order]) error {
		if o.Status != from {
			return fmt.Errorf("%w: %q, want %q", errWrongStatus, o.Status, from)
		}
		return timebox.Raise(ag, typ, data)
	}
}

func main() {
	backend := flag.String("backend", "memory", "memory, redis, postgres or raft")
	flag.Parse()
	if err := run(*backend); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func run(backend string) error {
	store, err := openStore(backend, timebox.Config{Indexer: indexOrders})
	if err != nil {
		return err
	}
	defer func() { _ = store.Close() }()

	prefix := timebox.ID(fmt.Sprintf("run-%d", os.Getpid()))
	model := newTotals()
	stop := followOrders(store, "order-totals-"+string(prefix),
		timebox.NewAggregateID("order", prefix), model)
	raised := 0
	orders := timebox.NewExecutor(store,
		func() *Order { return &Order{} }, appliers,
		func(o *Order, evs []*timebox.Event) {
			for _, ev := range evs {
				raised++
				fmt.Printf("  event %d %-16s status now %q\n", ev.Sequence, ev.Type, o.Status)
			}
		},
	)

	first := timebox.NewAggregateID("order", prefix, "1")
	second := timebox.NewAggregateID("order", prefix, "2")
	steps := []struct {
		name string
		id   timebox.AggregateID
		cmd  timebox.Command[*Order]
	}{
		{"create", first, create(
			[]Item{{SKU: "tea", Quantity: 2, Cents: 450}, {SKU: "cup", Quantity: 1, Cents: 1200}},
			Address{Street: "1 Canal St", City: "Amsterdam", Region: "eu"},
		)},
		{"create", second, create(
			[]Item{{SKU: "kettle", Quantity: 1, Cents: 3900}},
			Address{Street: "9 Elm Ave", City: "Boston", Region: "us"},
		)},
		{"confirm", first, advance("created", OrderConfirmed, struct{}{})},
		{"confirm", second, advance("created", OrderConfirmed, struct{}{})},
		{"ship", first, advance("confirmed", OrderShipped, Shipped{Tracking: "TB-0001"})},
		{"deliver", first, advance("shipped", OrderDelivered, struct{}{})},
		{"deliver again", first, advance("shipped", OrderDelivered, struct{}{})},
	}
	for _, s := range steps {
		fmt.Printf("%s %s\n", s.name, s.id)
		if _, err := orders.Exec(s.id, s.cmd); err != nil {
			if !errors.Is(err, errWrongStatus) {
				return err
			}
			fmt.Printf("  rejected: %v\n", err)
		}
	}
	if err := printIndexes(store, timebox.NewAggregateID("order", prefix)); err != nil {
		return err
	}
	if err := model.waitFor(raised, 30*time.Second); err != nil {
		return err
	}
	model.print()
	return stop()
}

func printIndexes(store *timebox.Store, prefix timebox.AggregateID) error {
	ids, err := store.ListAggregates(prefix)
	if err != nil {
		return err
	}
	fmt.Println("orders:")
	for _, id := range ids {
		status, err := store.GetAggregateStatus(id)
		if err != nil {
			return err
		}
		fmt.Printf("  %s is %s\n", id, status)
	}
	for _, status := range []string{"confirmed", "delivered"} {
		entries, err := store.ListAggregatesByStatus(status)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.ID.HasPrefix(prefix) {
				fmt.Printf("%s since %s: %s\n", status, e.Timestamp.Format("15:04:05.000"), e.ID)
			}
		}
	}
	regions, err := store.ListLabelValues("region")
	if err != nil {
		return err
	}
	for _, r := range regions {
		ids, err := store.ListAggregatesByLabel("region", r)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if id.HasPrefix(prefix) {
				fmt.Printf("region %s: %s\n", r, id)
			}
		}
	}
	return nil
}
