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
		apps      *appliers[T]
		events    []*Event
		onSuccess []SuccessAction[T]
	}
)

// MakeApplier adapts a function taking the decoded event payload to an
// Applier. An event whose Data does not decode into a D is not skipped
// silently: within an Executor the load, Exec or Raise that meets it fails
// with an error wrapping ErrInvalidEvent that names the event's type,
// sequence and the decode error (or, with Config.SkipUndecodable, the
// event leaves the state unchanged). Called outside an Executor, the
// Applier panics with that error.
func MakeApplier[T, D any](fn func(T, *Event, D) T) Applier[T] {
	return func(st T, ev *Event) T {
		data, err := GetEventValue[D](ev)
		if err != nil {
			panic(&undecodableError{ev: ev, err: err})
		}
		return fn(st, ev, data)
	}
}

// Raise marshals value as the data of a new event of type typ, with the
// metadata of the command's context (WithMetadata), queues the event for
// the command's append, and applies it to the aggregator's value at once,
// so later logic in the same command sees it. The event is
// applied as it is stored: its Applier decodes the marshalled bytes, never
// the caller's value, so the state equals the one any other process
// rebuilds from the log (fields tagged json:"-", a custom MarshalJSON, and
// maps or slices the caller changes later make no difference).
//
// It fails, raising nothing, for an empty typ (ErrInvalidEvent), a value
// that cannot be marshalled, data the type's Applier cannot decode
// (ErrInvalidEvent), or, with Config.RequireAppliers, a type the Executor
// has no Applier for (ErrNoApplier).
func Raise[T, V any](ag *Aggregator[T], typ EventType, value V) error {
	if typ == "" {
		return fmt.Errorf("%w: empty event type", ErrInvalidEvent)
	}
	if err := ag.apps.check(typ); err != nil {
		return err
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
	applied, err := ag.apps.apply(ag.value, ev)
	if err != nil {
		return err
	}
	ag.value = applied
	ag.events = append(ag.events, ev)
	ag.next++
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

// appliers are an Executor's Appliers with the store's strictness
// options.
type appliers[T any] struct {
	apps            Appliers[T]
	skipUndecodable bool
	requireAppliers bool
}

// undecodableError is what a MakeApplier-built Applier panics with when an
// event's Data does not decode; appliers.apply turns it into an error.
type undecodableError struct {
	ev  *Event
	err error
}

func (e *undecodableError) Error() string {
	return fmt.Sprintf("%s: %q event at sequence %d of %s: %v",
		ErrInvalidEvent, e.ev.Type, e.ev.Sequence, e.ev.AggregateID, e.err)
}

func (e *undecodableError) Unwrap() []error {
	return []error{ErrInvalidEvent, e.err}
}

func newAppliers[T any](apps Appliers[T], cfg Config) *appliers[T] {
	return &appliers[T]{
		apps:            apps,
		skipUndecodable: cfg.SkipUndecodable,
		requireAppliers: cfg.RequireAppliers,
	}
}

// has reports whether there is an Applier for typ.
func (a *appliers[T]) has(typ EventType) bool {
	_, ok := a.apps[typ]
	return ok
}

// check returns ErrNoApplier for a type without an Applier when appliers
// are required.
func (a *appliers[T]) check(typ EventType) error {
	if a.requireAppliers && !a.has(typ) {
		return fmt.Errorf("%w: %q", ErrNoApplier, typ)
	}
	return nil
}

// apply folds ev into st with its type's Applier; a type without one
// leaves st unchanged. An event the Applier cannot decode is an error
// wrapping ErrInvalidEvent, or leaves st unchanged with skipUndecodable.
func (a *appliers[T]) apply(st T, ev *Event) (res T, err error) {
	fn, ok := a.apps[ev.Type]
	if !ok {
		return st, nil
	}
	defer func() {
		if r := recover(); r != nil {
			ue, ok := r.(*undecodableError)
			if !ok || ue.ev != ev {
				panic(asPanicError(ErrApplierPanicked, r))
			}
			if a.skipUndecodable {
				res, err = st, nil
				return
			}
			res, err = st, ue
		}
	}()
	return fn(st, ev), nil
}

// fold applies evs to st in order.
func (a *appliers[T]) fold(st T, evs []*Event) (T, error) {
	for _, ev := range evs {
		var err error
		if st, err = a.apply(st, ev); err != nil {
			return st, err
		}
	}
	return st, nil
}
