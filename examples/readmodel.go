package main

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/kode4food/timebox"
)

// totals is a read model: each order's value and each status's count,
// kept up to date from the store's feed by a durable consumer (see
// followOrders) rather than by the commands. A real read model keeps its
// rows and the Position of the last event it applied in its own database,
// in one transaction, and skips an event at or before that Position: the
// consumer delivers at least once.
type totals struct {
	mu       sync.Mutex
	cents    map[string]int
	status   map[string]string
	last     timebox.Position
	applied  int
	progress chan struct{}
}

func newTotals() *totals {
	return &totals{
		cents: map[string]int{}, status: map[string]string{},
		progress: make(chan struct{}, 1),
	}
}

// apply is the consumer's handler.
func (t *totals) apply(_ context.Context, ev *timebox.Event) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if ev.Position.Compare(t.last) <= 0 {
		return nil // seen before a restart
	}
	order := ev.AggregateID.String()
	if ev.Type == OrderCreated {
		c, err := timebox.GetEventValue[Created](ev)
		if err != nil {
			return err
		}
		for _, it := range c.Items {
			t.cents[order] += it.Quantity * it.Cents
		}
	}
	t.status[order] = string(ev.Type)
	t.last = ev.Position
	t.applied++
	select {
	case t.progress <- struct{}{}:
	default:
	}
	return nil
}

// waitFor waits until the model has applied n events, or a deadline.
func (t *totals) waitFor(n int, d time.Duration) error {
	deadline := time.After(d)
	for {
		t.mu.Lock()
		got := t.applied
		t.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-t.progress:
		case <-deadline:
			return fmt.Errorf("read model applied %d of %d events after %v", got, n, d)
		}
	}
}

func (t *totals) print() {
	t.mu.Lock()
	defer t.mu.Unlock()
	orders := make([]string, 0, len(t.cents))
	for o := range t.cents {
		orders = append(orders, o)
	}
	sort.Strings(orders)
	fmt.Println("read model (fed by a durable consumer):")
	for _, o := range orders {
		fmt.Printf("  %s worth %d.%02d, last event %s\n",
			o, t.cents[o]/100, t.cents[o]%100, t.status[o])
	}
}

// followOrders runs the durable consumer name on store, feeding model
// with the events of the orders under prefix, until the returned stop is
// called. Its checkpoint lives in the backend: run again with the same
// name, it resumes after the last event it handled.
func followOrders(
	store *timebox.Store, name string, prefix timebox.AggregateID, model *totals,
) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- store.Consume(ctx, name, model.apply,
			timebox.WithAggregatePrefix(prefix))
	}()
	return func() error {
		cancel()
		if err := <-done; err != context.Canceled {
			return err
		}
		// This example's consumer is one run's: remove its checkpoint.
		return store.DeleteConsumer(context.Background(), name)
	}
}
