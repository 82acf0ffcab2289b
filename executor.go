package timebox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// maxBatch bounds how many queued commands on one aggregate are committed
// in one append.
const maxBatch = 128

type (
	// Executor runs commands against aggregates of one state type T: it
	// loads the state, runs the command, appends the raised events with
	// optimistic concurrency and retries on conflicts. It is safe for
	// concurrent use.
	//
	// Commands on one aggregate through one Executor queue up rather than
	// race: one caller at a time takes the queue, runs each command in turn
	// on the state the previous one left, and commits them together in one
	// append. Each caller still gets its own result and error. Writers in
	// other Executors or processes are resolved by optimistic retries.
	Executor[T any] struct {
		store     *Store
		construct func() T
		apps      Appliers[T]
		onSuccess []SuccessAction[T]
		cache     *lru.Cache[string, *projection[T]]

		mu     sync.Mutex
		queues map[string][]*call[T]
	}

	// projection is an aggregate's state as of the sequence next.
	projection[T any] struct {
		value T
		next  int64
	}

	// call is one Exec waiting in an aggregate's queue.
	call[T any] struct {
		ctx     context.Context
		cmd     Command[T]
		value   T
		events  []*Event
		actions []SuccessAction[T]
		err     error
		// done receives true once the call is finished, or false when its
		// caller must take over the queue.
		done chan bool
	}
)

var errNoStore = errors.New("executor has no store")

// NewExecutor returns an Executor on store. construct makes the state of an
// aggregate with no history; apps fold events into it; onSuccess actions
// run, in order, after every successful command.
func NewExecutor[T any](
	store *Store, construct func() T, apps Appliers[T],
	onSuccess ...SuccessAction[T],
) *Executor[T] {
	size := DefaultCacheSize
	if store != nil {
		size = store.config.CacheSize
	}
	cache, _ := lru.New[string, *projection[T]](max(size, 1))
	return &Executor[T]{
		store:     store,
		construct: construct,
		apps:      apps,
		onSuccess: onSuccess,
		cache:     cache,
		queues:    map[string][]*call[T]{},
	}
}

// GetStore returns the Store the executor runs on.
func (e *Executor[T]) GetStore() *Store {
	return e.store
}

// AppliesEvent reports whether the executor has an Applier for ev's type.
func (e *Executor[T]) AppliesEvent(ev *Event) bool {
	_, ok := e.apps[ev.Type]
	return ok
}

// Exec is ExecContext with context.Background().
func (e *Executor[T]) Exec(id AggregateID, cmd Command[T]) (T, error) {
	return e.ExecContext(context.Background(), id, cmd)
}

// ExecContext runs cmd on the current state of id and appends the events it
// raises. On a version conflict it folds in the new events and runs cmd
// again, up to Config.MaxRetries attempts in all. A command that raises
// nothing is still checked against the aggregate's head, so its decision
// was taken on the latest state. On success it returns the new state and
// runs the success actions: the executor's, then those the command
// registered, each with panics recovered and logged.
//
// A command may read and append through the Store, and Exec on other
// aggregates, but must not Exec on its own aggregate through the same
// Executor: that call would queue behind the command itself.
//
// Errors: the command's own error (nothing written), ErrMaxRetriesExceeded,
// ErrUnknownOutcome (the events may or may not have been appended; the
// command is not run again), ctx's error, ErrInvalidAggregateID, ErrClosed,
// or the backend's error.
func (e *Executor[T]) ExecContext(
	ctx context.Context, id AggregateID, cmd Command[T],
) (T, error) {
	var zero T
	if e.store == nil {
		return zero, errNoStore
	}
	if err := e.store.check(id); err != nil {
		return zero, err
	}
	if cmd == nil {
		return zero, errors.New("command is required")
	}
	id = id.Clone() // the executor's own: its events and the backend keep it
	c := &call[T]{ctx: ctx, cmd: cmd, done: make(chan bool, 1)}
	key := id.key()
	if e.enqueue(key, c) || !<-c.done {
		e.lead(key, id)
	}
	if c.err != nil {
		return zero, c.err
	}
	e.succeed(id, c)
	return c.value, nil
}

// SaveSnapshot is SaveSnapshotContext with context.Background().
func (e *Executor[T]) SaveSnapshot(id AggregateID) error {
	return e.SaveSnapshotContext(context.Background(), id)
}

// SaveSnapshotContext stores id's current state as a snapshot at its next
// sequence. It fails on a state that cannot be marshalled, or a closed
// store.
func (e *Executor[T]) SaveSnapshotContext(ctx context.Context, id AggregateID) error {
	if e.store == nil {
		return errNoStore
	}
	if err := e.store.check(id); err != nil {
		return err
	}
	p, err := e.load(ctx, id.key(), id)
	if err != nil {
		return err
	}
	return e.store.PutSnapshotContext(ctx, id, p.value, p.next)
}

// enqueue adds c to the queue of key, and reports whether the caller must
// lead the queue because no one else does.
func (e *Executor[T]) enqueue(key string, c *call[T]) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	q, running := e.queues[key]
	e.queues[key] = append(q, c)
	return !running
}

// lead runs the next batch of key's queue, which starts with the caller's
// own call, then hands the queue on to the first caller still waiting.
func (e *Executor[T]) lead(key string, id AggregateID) {
	for served := 0; ; {
		batch := e.take(key)
		e.run(key, id, batch)
		next := e.release(key)
		for i, c := range batch {
			if i > 0 || served > 0 {
				c.done <- true
			}
		}
		served += len(batch)
		if next == nil {
			return
		}
		if served >= maxBatch {
			next.done <- false
			return
		}
	}
}

func (e *Executor[T]) take(key string) []*call[T] {
	e.mu.Lock()
	defer e.mu.Unlock()
	q := e.queues[key]
	n := min(len(q), maxBatch)
	e.queues[key] = q[n:]
	return q[:n:n]
}

func (e *Executor[T]) release(key string) *call[T] {
	e.mu.Lock()
	defer e.mu.Unlock()
	if q := e.queues[key]; len(q) > 0 {
		return q[0]
	}
	delete(e.queues, key)
	return nil
}

// run executes a batch of calls on id and commits their events in one
// append, retrying the whole batch on conflicts.
func (e *Executor[T]) run(key string, id AggregateID, calls []*call[T]) {
	live := make([]*call[T], 0, len(calls))
	for _, c := range calls {
		if c.err = c.ctx.Err(); c.err == nil {
			live = append(live, c)
		}
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := joinContexts(live)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			e.cache.Remove(key)
			fail(live, fmt.Errorf("applier panicked: %v", r))
		}
	}()

	p, err := e.load(ctx, key, id)
	for attempt := 1; err == nil; attempt++ {
		var evs []*Event
		var end *projection[T]
		live, evs, end = e.runCommands(id, p, live)
		if len(live) == 0 {
			return
		}
		sent := time.Now()
		err = e.store.append(ctx, AppendRequest{
			ID: id, ExpectedSequence: p.next, Events: evs,
		})
		if err == nil {
			e.remember(key, end)
			return
		}
		var vc *VersionConflictError
		if !errors.As(err, &vc) {
			e.cache.Remove(key)
			break
		}
		if attempt >= e.store.config.MaxRetries {
			err = fmt.Errorf("%w: %d attempts: %w", ErrMaxRetriesExceeded, attempt, err)
			break
		}
		p, err = e.afterConflict(ctx, key, id, p, vc, attempt, time.Since(sent))
	}
	fail(live, err)
}

// runCommands runs each call in turn on the state the previous one left.
// It returns the calls that succeeded, their events (stamped by Raise,
// ready to append), and the state after them; a failed call is finished
// with its error.
func (e *Executor[T]) runCommands(
	id AggregateID, p *projection[T], calls []*call[T],
) ([]*call[T], []*Event, *projection[T]) {
	ok := calls[:0]
	var evs []*Event
	cur := *p
	for _, c := range calls {
		ag := &Aggregator[T]{
			ctx:   c.ctx,
			id:    id,
			value: cur.value,
			next:  cur.next,
			apps:  e.apps,
		}
		if c.err = runCommand(c.cmd, ag); c.err != nil {
			continue
		}
		c.value, c.events, c.actions = ag.value, ag.events, ag.onSuccess
		evs = append(evs, ag.events...)
		cur = projection[T]{value: ag.value, next: ag.next}
		ok = append(ok, c)
	}
	return ok, evs, &cur
}

func runCommand[T any](cmd Command[T], ag *Aggregator[T]) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("command panicked: %v", r)
		}
	}()
	return cmd(ag.value, ag)
}

// catchUp folds a conflict's new events into p, or reloads the aggregate
// when they do not lead exactly from p to the head.
func (e *Executor[T]) catchUp(
	ctx context.Context, key string, id AggregateID, p *projection[T],
	vc *VersionConflictError,
) (*projection[T], error) {
	n := int64(len(vc.NewEvents))
	if vc.ExpectedSequence != p.next || vc.ActualSequence != p.next+n || n == 0 {
		e.cache.Remove(key)
		return e.load(ctx, key, id)
	}
	value := p.value
	for _, ev := range vc.NewEvents {
		value = apply(e.apps, value, ev)
	}
	return &projection[T]{value: value, next: vc.ActualSequence}, nil
}

// load returns id's state from the cache or, failing that, from its
// snapshot and the events after it, saving a new snapshot when those
// events outweigh the old one.
func (e *Executor[T]) load(
	ctx context.Context, key string, id AggregateID,
) (*projection[T], error) {
	if p, ok := e.cache.Get(key); ok {
		return p, nil
	}
	value := e.construct()
	res, err := e.store.GetSnapshotContext(ctx, id, &value)
	if err != nil {
		return nil, err
	}
	p := &projection[T]{value: value, next: res.NextSequence}
	for _, ev := range res.AdditionalEvents {
		p.value = apply(e.apps, p.value, ev)
		p.next = ev.Sequence + 1
	}
	if e.wantsSnapshot(res) {
		err := e.store.PutSnapshotContext(ctx, id, p.value, p.next)
		if err != nil {
			slog.Warn("timebox: opportunistic snapshot failed",
				"aggregate", id.String(), "error", err)
		}
	}
	e.remember(key, p)
	return p, nil
}

func (e *Executor[T]) wantsSnapshot(res *SnapshotResult) bool {
	if len(res.AdditionalEvents) == 0 {
		return false
	}
	if res.SnapshotSize == 0 {
		return true
	}
	ratio := float64(res.EventsSize) / float64(res.SnapshotSize)
	return ratio > e.store.config.SnapshotRatio
}

// remember caches p unless the cache holds a later state of the aggregate.
func (e *Executor[T]) remember(key string, p *projection[T]) {
	if old, ok := e.cache.Peek(key); ok && old.next > p.next {
		return
	}
	e.cache.Add(key, p)
}

func (e *Executor[T]) succeed(id AggregateID, c *call[T]) {
	evs := nonNil(c.events)
	for _, fn := range e.onSuccess {
		runAction(id, fn, c.value, evs)
	}
	for _, fn := range c.actions {
		runAction(id, fn, c.value, evs)
	}
}

func runAction[T any](id AggregateID, fn SuccessAction[T], value T, evs []*Event) {
	defer func() {
		if r := recover(); r != nil {
			slog.Error("OnSuccess action panicked",
				"aggregate", id.String(), "panic", r)
		}
	}()
	fn(value, evs)
}

func fail[T any](calls []*call[T], err error) {
	for _, c := range calls {
		c.err = err
	}
}

// joinContexts returns a context carrying the first call's values that is
// cancelled once every call's context is done, so one caller giving up does
// not abort the append the others are waiting for.
func joinContexts[T any](calls []*call[T]) (context.Context, context.CancelFunc) {
	for _, c := range calls {
		if c.ctx.Done() == nil {
			return c.ctx, func() {} // never cancelled, so neither is the join
		}
	}
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(calls[0].ctx))
	var left atomic.Int32
	left.Store(int32(len(calls)))
	stops := make([]func() bool, len(calls))
	for i, c := range calls {
		stops[i] = context.AfterFunc(c.ctx, func() {
			if left.Add(-1) == 0 {
				cancel(context.Cause(c.ctx))
			}
		})
	}
	return ctx, func() {
		for _, stop := range stops {
			stop()
		}
		cancel(nil)
	}
}
