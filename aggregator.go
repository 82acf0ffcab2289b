package timebox

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

type (
	// Command decides what happens to an aggregate: it reads the state it
	// is given and raises events through the Aggregator. Returning an error
	// aborts the command with nothing written.
	Command[T any] func(T, *Aggregator[T]) error

	// Applier folds one event into a state and returns the new state. It
	// must not change the state it is given (return a changed copy): the
	// Executor keeps earlier states for retries and its cache.
	Applier[T any] func(T, *Event) T

	// Appliers maps each event type to its Applier. Events of other types
	// leave the state unchanged.
	Appliers[T any] map[EventType]Applier[T]

	// SuccessAction runs after a command's events are persisted, with the
	// new state and those events (empty when the command raised none).
	SuccessAction[T any] func(T, []*Event)

	// Aggregator is a command's view of one aggregate: its state so far and
	// the events the command has raised. It belongs to one command on one
	// goroutine.
	Aggregator[T any] struct {
		ctx       context.Context
		id        AggregateID
		value     T
		next      int64
		apps      Appliers[T]
		events    []*Event
		onSuccess []SuccessAction[T]
	}
)

// MakeApplier adapts a function taking the decoded event payload to an
// Applier. An event whose Data does not decode into a D leaves the state
// unchanged.
func MakeApplier[T, D any](fn func(T, *Event, D) T) Applier[T] {
	return func(st T, ev *Event) T {
		data, err := GetEventValue[D](ev)
		if err != nil {
			return st
		}
		return fn(st, ev, data)
	}
}

// Raise marshals value as the data of a new event of type typ, with the
// metadata of the command's context (WithMetadata), queues the event for
// the command's append, and applies it to the aggregator's value
// at once, so later logic in the same command sees it. It fails for an
// empty typ or a value that cannot be marshalled, raising nothing.
func Raise[T, V any](ag *Aggregator[T], typ EventType, value V) error {
	if typ == "" {
		return fmt.Errorf("%w: empty event type", ErrInvalidEvent)
	}
	data, err := json.Marshal(value)
	if err != nil {
		return fmt.Errorf("encode %q event: %w", typ, err)
	}
	ev := &Event{
		Timestamp:   time.Now().Round(0).UTC(),
		Sequence:    ag.next,
		Type:        typ,
		AggregateID: ag.id,
		Data:        data,
		Metadata:    ag.metadata(),
	}
	ev.decoded.Store(&decodedValue{value: value})
	ag.events = append(ag.events, ev)
	ag.next++
	ag.value = apply(ag.apps, ag.value, ev)
	return nil
}

// metadata returns the metadata the command's context carries.
func (a *Aggregator[T]) metadata() Metadata {
	if a.ctx == nil {
		return nil
	}
	return MetadataFrom(a.ctx)
}

// ID returns the aggregate's ID.
func (a *Aggregator[T]) ID() AggregateID {
	return a.id
}

// Value returns the state, including the events raised so far.
func (a *Aggregator[T]) Value() T {
	return a.value
}

// NextSequence returns the sequence the next raised event will get.
func (a *Aggregator[T]) NextSequence() int64 {
	return a.next
}

// OnSuccess registers fn to run, after the Executor's own success actions,
// once this command's events are persisted.
func (a *Aggregator[T]) OnSuccess(fn SuccessAction[T]) {
	a.onSuccess = append(a.onSuccess, fn)
}

// Context returns the context the command was executed with.
func (a *Aggregator[T]) Context() context.Context {
	return a.ctx
}

func apply[T any](apps Appliers[T], st T, ev *Event) T {
	if fn, ok := apps[ev.Type]; ok {
		return fn(st, ev)
	}
	return st
}
