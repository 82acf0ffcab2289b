package timebox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/kode4food/timebox/internal/goroutine"
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
		apps      *appliers[T]
		onSuccess []SuccessAction[T]
		cache     *lru.Cache[string, *projection[T]]

		// cacheMu orders what enters the cache: the states of commits
		// (counted in commits) and states loaded from the store.
		cacheMu sync.Mutex
		commits uint64

		snapMu sync.Mutex
		snaps  *lru.Cache[string, *snapStat]

		mu     sync.Mutex
		queues map[string]*queue[T]
		// waiting holds, for each goroutine whose Exec waits in a queue,
		// the queue's key: with the queues' runners, who waits for whom
		// (see cycle).
		waiting map[uintptr]string
	}

	// projection is an aggregate's state as of the sequence next, and the
	// IDs of the last commands that raised its events (see WithCommandID).
	projection[T any] struct {
		value T
		next  int64
		cmds  commandWindow
	}

	// call is one Exec waiting in an aggregate's queue.
	call[T any] struct {
		ctx     context.Context
		cmd     Command[T]
		value   T
		events  []*Event
		actions []SuccessAction[T]
		err     error
		// attempts and batch are counted for Hooks (see attempted).
		attempts, batch int
		// repeated is set when the call's command ID was already among
		// the aggregate's commands: its command was not run.
		repeated bool
		// started is set, under the Executor's mu, once the call is taken
		// into a batch or handed the queue; it can no longer withdraw.
		started bool
		// done receives true once the call is finished, or false when its
		// caller must take over the queue.
		done chan bool
		// caller is the goroutine that waits for the call, while it
		// waits in a queue.
		caller uintptr
	}
)

var (
	errNoStore    = errors.New("executor has no store")
	errNilContext = errors.New("context is required")
)

// NewExecutor returns an Executor on store. construct makes the state of an
// aggregate with no history; apps fold events into it; onSuccess actions
// run, in order, after every successful command.
func NewExecutor[T any](
	store *Store, construct func() T, apps Appliers[T],
	onSuccess ...SuccessAction[T],
) *Executor[T] {
	cfg := DefaultConfig()
	if store != nil {
		cfg = store.config
	}
	cache, _ := lru.New[string, *projection[T]](max(cfg.CacheSize, 1))
	snaps, _ := lru.New[string, *snapStat](max(cfg.CacheSize, 1))
	return &Executor[T]{
		store: store,
		construct: func() T {
			defer repanic(ErrConstructorPanicked)
			return construct()
		},
		apps:      newAppliers(apps, cfg),
		onSuccess: onSuccess,
		cache:     cache,
		snaps:     snaps,
		queues:    map[string]*queue[T]{},
		waiting:   map[uintptr]string{},
	}
}

// GetStore returns the Store the executor runs on.
func (e *Executor[T]) GetStore() *Store {
	return e.store
}

// AppliesEvent reports whether the executor has an Applier for ev's type.
func (e *Executor[T]) AppliesEvent(ev *Event) bool {
	return e.apps.has(ev.Type)
}

// Exec is ExecContext with context.Background().
func (e *Executor[T]) Exec(id AggregateID, cmd Command[T]) (T, error) {
	return e.ExecContext(context.Background(), id, cmd)
}

// ExecContext runs cmd on the current state of id and appends the events it
// raises. On a version conflict it folds in the new events and runs cmd
// again, up to Config.MaxRetries attempts in all. A command that raises
// nothing, or fails, is still checked against the aggregate's head, so its
// outcome, its error too, was decided on the latest state: a state cached
// behind the head costs the failing call one more round trip, and it runs
// again on the new events. On success it returns the new state and runs
// the success actions: the executor's, then those the command registered,
// each with panics recovered and logged.
//
// Calls on one aggregate wait in a queue behind the command running on it.
// A waiting call whose ctx is done before its command starts leaves the
// queue at once with ctx's error, and nothing is written for it. Once its
// command has run, ctx is checked again before every append: a call whose
// ctx is done by then is dropped from the batch with ctx's error, and the
// others are run again without it, so a command that outlives its ctx is
// never committed. A call whose append is in flight gets that append's
// outcome. However a command ends (error, panic, runtime.Goexit, ctx) the
// queue moves on; a command that blocks stalls only the calls behind it.
//
// A command may read and append through the Store, and Exec on other
// aggregates. An Exec on its own aggregate through the same Executor, from
// the command's goroutine, fails at once with ErrReentrantExec and the
// command goes on, and so does an Exec that would close a cycle of
// commands waiting for each other through this Executor (X's command
// Execs Y, whose command, run by whichever caller leads Y's queue, Execs
// X). A cycle through several Executors is not seen: it waits until a
// ctx ends, so give such nested calls a deadline.
//
// Panics in user code are recovered and returned as a *PanicError, logged
// once at ERROR with the stack through Config.Logger; errors.Is tells the
// component: ErrCommandPanicked, or ErrApplierPanicked from an event the
// command raised (that call fails, and nothing of it is written; the
// others of its batch go on), ErrApplierPanicked from a stored event,
// ErrConstructorPanicked or ErrIndexerPanicked (the batch fails and
// nothing is written). The aggregate stays usable.
//
// The Store re-sends an append whose reply was lost and retries one the
// backend could not take (see Store.AppendEventsContext), so an Exec sees
// ErrUnknownOutcome only when the backend stayed unreachable until ctx
// ended (or Config.RetryTimeout passed). A conflict with writers in other
// processes is retried at once, and from the second in a row after a
// jittered backoff of a few append round trips, growing, then a fresh
// read. With WithCommandID, a repeated command is not run again.
//
// Errors: the command's own error (nothing written), ErrMaxRetriesExceeded,
// ErrUnknownOutcome (the events may or may not have been appended; the
// command is not run again), ErrInvalidEvent (a stored event its Applier
// cannot decode; see Config.SkipUndecodable), ctx's error (context.Canceled or
// context.DeadlineExceeded, nothing written unless wrapped in
// ErrUnknownOutcome), ErrReentrantExec, a *PanicError,
// ErrInvalidSequence (the events would take the aggregate past
// math.MaxInt64), ErrInvalidAggregateID, ErrClosed, or the backend's error.
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
	if ctx == nil {
		return zero, errNilContext
	}
	id = id.Clone() // the executor's own: its events and the backend keep it
	c := &call[T]{ctx: ctx, cmd: cmd, done: make(chan bool, 1)}
	defer e.observe(id, c)()
	key := id.key()
	lead, err := e.enqueue(key, c)
	if err != nil {
		c.err = fmt.Errorf("%w: %s", err, id)
		return zero, c.err
	}
	if lead || e.await(key, c) {
		e.lead(key, id, c)
	}
	if c.err != nil {
		return zero, c.err
	}
	if !c.repeated {
		e.succeed(id, c)
	}
	return c.value, nil
}

// Get is GetContext with context.Background().
func (e *Executor[T]) Get(id AggregateID) (T, error) {
	return e.GetContext(context.Background(), id)
}

// GetContext returns id's state without running a command or appending:
// from the executor's cache when it holds the aggregate, else loaded from
// the store (latest snapshot and the events after it) and cached. An
// aggregate with no history gives the constructor's state.
//
// Freshness: a cached state holds every command this Executor committed,
// but may lag writes made through other Executors or processes until the
// next Exec on the aggregate; GetLatest reads the head first. Like the
// state Exec returns, the value may share memory with the cache: treat it
// as read-only.
//
// Errors: ErrInvalidAggregateID, ErrClosed, ctx's error, a *PanicError
// (ErrConstructorPanicked or ErrApplierPanicked), or the backend's error.
func (e *Executor[T]) GetContext(ctx context.Context, id AggregateID) (T, error) {
	return e.get(ctx, id, false)
}

// GetLatest is GetContext as of the aggregate's head in the store: it
// checks the cached (or loaded) state against the head, as a command that
// raises nothing would, and folds in any events written elsewhere, leaving
// the cache caught up. It costs one round trip to the backend (on raft, a
// read confirmed by the leader) and appends nothing.
//
// Errors: those of GetContext.
func (e *Executor[T]) GetLatest(ctx context.Context, id AggregateID) (T, error) {
	return e.get(ctx, id, true)
}

func (e *Executor[T]) get(
	ctx context.Context, id AggregateID, latest bool,
) (res T, err error) {
	var zero T
	if e.store == nil {
		return zero, errNoStore
	}
	if err := e.store.check(id); err != nil {
		return zero, err
	}
	if ctx == nil {
		return zero, errNilContext
	}
	id = id.Clone()
	key := id.key()
	defer func() {
		if r := recover(); r != nil {
			e.cache.Remove(key)
			res, err = zero, recovered(e.logger(), errPanicked, r, id)
		}
	}()
	p, err := e.load(ctx, key, id)
	if err != nil {
		return zero, err
	}
	if !latest {
		return p.value, nil
	}
	err = e.store.appendObserved(ctx, AppendRequest{ID: id, ExpectedSequence: p.next})
	var vc *VersionConflictError
	switch {
	case err == nil:
		return p.value, nil
	case !errors.As(err, &vc):
		return zero, err
	}
	if p, err = e.catchUp(ctx, key, id, p, vc); err != nil {
		return zero, err
	}
	e.remember(key, p)
	return p.value, nil
}

// SaveSnapshot is SaveSnapshotContext with context.Background().
func (e *Executor[T]) SaveSnapshot(id AggregateID) error {
	return e.SaveSnapshotContext(context.Background(), id)
}

// SaveSnapshotContext rebuilds id's state from the store (never from the
// cache, which may lag other writers) and stores it as a snapshot at its
// next sequence, only if that is still the aggregate's head and the
// aggregate is live (see SnapshotRequest.IfHead). When the aggregate moved
// on in between, or has no history, nothing is written and it returns nil
// (the backend's ErrSnapshotSkipped is not passed on).
// It never moves a head.
//
// Errors: a state that cannot be marshalled, an event its Applier cannot
// decode (ErrInvalidEvent), a *PanicError (ErrConstructorPanicked,
// ErrApplierPanicked, or the state's MarshalJSON), ErrInvalidAggregateID,
// ErrClosed, ctx's error or the backend's error.
func (e *Executor[T]) SaveSnapshotContext(ctx context.Context, id AggregateID) (err error) {
	if e.store == nil {
		return errNoStore
	}
	if err := e.store.check(id); err != nil {
		return err
	}
	defer func() {
		if r := recover(); r != nil {
			err = recovered(e.logger(), errPanicked, r, id)
		}
	}()
	since := e.commitCount()
	p, _, err := e.loadStored(ctx, id)
	if err != nil {
		return err
	}
	e.rememberLoaded(id.key(), p, since)
	data, err := e.marshalSnapshot(id, p)
	if err != nil {
		return fmt.Errorf("encode snapshot of %s: %w", id, err)
	}
	_, err = e.store.putSnapshotObserved(ctx, id, json.RawMessage(data), p.next, true)
	if errors.Is(err, ErrSnapshotSkipped) {
		return nil
	}
	return err
}

// run executes a batch of calls on id and commits their events in one
// append, retrying the whole batch on conflicts.
// A call whose ctx is done before the append is dropped with ctx's error,
// and the rest run again without it.
func (e *Executor[T]) run(key string, id AggregateID, calls []*call[T]) {
	live := dropDone(make([]*call[T], 0, len(calls)), calls)
	if len(live) == 0 {
		return
	}
	ctx, release := live[0].ctx, func() {}
	if len(live) > 1 {
		ctxs := make([]context.Context, len(live))
		for i, c := range live {
			ctxs[i] = c.ctx
		}
		ctx, release = joinContexts(ctxs)
	}
	defer release()
	defer func() {
		if r := recover(); r != nil {
			e.cache.Remove(key)
			failBatch(live, recovered(e.logger(), errPanicked, r, id))
		}
	}()

	me := goroutine.Token()
	p, err := e.load(ctx, key, id)
	for attempt := 1; err == nil; attempt++ {
		e.setRunner(key, me)
		evs, end := e.runCommands(id, p, live)
		e.setRunner(key, 0)
		// A background snapshot of the aggregate goes out first; the
		// calls whose ctx ended before or while it did are dropped.
		e.awaitSending(ctx, key)
		if n := len(live); n > 0 {
			if live = dropDone(live[:0], live); len(live) < n {
				// Later commands saw the dropped ones' events: run again.
				attempt--
				continue
			}
		}
		if len(live) == 0 {
			return
		}
		// The append also checks the head for the calls that failed or
		// raised nothing: their outcome too was decided on p, and is
		// final only if p is the latest state. On a conflict every call
		// runs again, failed or not.
		e.attempted(live)
		sent := time.Now()
		err = e.store.appendObserved(ctx, AppendRequest{
			ID: id, ExpectedSequence: p.next, Events: evs,
		})
		if err == nil {
			e.rememberCommit(key, end)
			e.committed(key, id, evs, end)
			return
		}
		var vc *VersionConflictError
		if !errors.As(err, &vc) {
			break
		}
		e.store.observeConflict(ctx, id, attempt, vc)
		if attempt >= e.store.config.MaxRetries {
			err = fmt.Errorf("%w: %d attempts: %w", ErrMaxRetriesExceeded, attempt, err)
			break
		}
		p, err = e.afterConflict(ctx, key, id, p, vc, attempt, time.Since(sent))
	}
	// The cached state may be behind the head now (a conflict's events not
	// folded in, an append of unknown outcome): the next Exec loads afresh
	// rather than conflicting on it again, which with MaxRetries 1 it
	// would do for ever.
	e.cache.Remove(key)
	failBatch(live, err)
}

// runCommands runs each call in turn on the state the previous one left,
// setting each call's outcome (a failed call's error, with nothing of its
// own in the state). It returns the events of the calls that succeeded
// (stamped by Raise, ready to append), and the state after them.
func (e *Executor[T]) runCommands(
	id AggregateID, p *projection[T], calls []*call[T],
) ([]*Event, *projection[T]) {
	var evs []*Event
	cur := *p
	limit := e.store.config.commandLimit()
	for _, c := range calls {
		if c.repeated = cur.cmds.has(CommandIDFrom(c.ctx)); c.repeated {
			c.value, c.events, c.actions, c.err = cur.value, nil, nil, nil
			continue
		}
		ag := &Aggregator[T]{
			ctx:   c.ctx,
			id:    id,
			value: cur.value,
			next:  cur.next,
			apps:  e.apps,
		}
		if c.err = e.runCommand(c.cmd, ag); c.err != nil {
			c.events, c.actions = nil, nil
			continue
		}
		c.value, c.events, c.actions = ag.value, ag.events, ag.onSuccess
		evs = append(evs, ag.events...)
		cur = projection[T]{
			value: ag.value, next: ag.next, cmds: cur.cmds.record(ag.events, limit),
		}
	}
	return evs, &cur
}

// runCommand runs cmd, returning a panic as a *PanicError: an applier's
// from Raise keeps its class, any other is ErrCommandPanicked.
func (e *Executor[T]) runCommand(cmd Command[T], ag *Aggregator[T]) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = recovered(e.logger(), ErrCommandPanicked, r, ag.id)
		}
	}()
	return cmd(ag.value, ag)
}

// dropDone finishes the calls whose context is done with its error and
// appends the others to dst (which may be calls[:0]).
func dropDone[T any](dst, calls []*call[T]) []*call[T] {
	for _, c := range calls {
		if err := c.ctx.Err(); err != nil {
			c.err = err
		} else {
			dst = append(dst, c)
		}
	}
	return dst
}

func (e *Executor[T]) logger() *slog.Logger {
	return e.store.config.logger()
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
	value, err := e.apps.fold(p.value, vc.NewEvents)
	if err != nil {
		return nil, err
	}
	return &projection[T]{
		value: value, next: vc.ActualSequence,
		cmds: p.cmds.record(vc.NewEvents, e.store.config.commandLimit()),
	}, nil
}

// load returns id's state from the cache or, failing that, from its
// snapshot and the events after it, saving a new snapshot when those
// events outweigh the old one. The snapshot is conditional on the head
// (IfHead), so a load racing an Archive or other writers never stores a
// state the aggregate has left behind.
func (e *Executor[T]) load(
	ctx context.Context, key string, id AggregateID,
) (*projection[T], error) {
	if p, ok := e.cache.Get(key); ok {
		return p, nil
	}
	since := e.commitCount()
	p, res, err := e.loadStored(ctx, id)
	if err != nil {
		return nil, err
	}
	stat := &snapStat{
		snapSize:   res.SnapshotSize,
		eventsSize: res.EventsSize,
		events:     len(res.AdditionalEvents),
	}
	if e.wantsSnapshot(res) {
		data, err := e.marshalSnapshot(id, p) // a panic is logged there
		n := 0
		if err == nil {
			n, err = e.store.putSnapshotObserved(ctx, id, json.RawMessage(data), p.next, true)
		}
		switch {
		case err == nil:
			stat = &snapStat{snapSize: n}
		case !errors.Is(err, ErrSnapshotSkipped):
			e.logger().Warn("timebox: opportunistic snapshot failed",
				"aggregate", id.String(), "error", err)
		}
	}
	e.noteLoad(key, stat)
	e.rememberLoaded(key, p, since)
	return p, nil
}

// loadStored rebuilds id's state from its stored snapshot and the events
// after it, bypassing the cache.
func (e *Executor[T]) loadStored(
	ctx context.Context, id AggregateID,
) (*projection[T], *SnapshotResult, error) {
	value := e.construct()
	target := &snapshotTarget[T]{value: &value}
	res, err := e.store.getSnapshotObserved(ctx, id, target)
	if err != nil {
		return nil, nil, err
	}
	p := &projection[T]{
		value: value, next: res.NextSequence,
		cmds: target.cmds.record(res.AdditionalEvents, e.store.config.commandLimit()),
	}
	if n := len(res.AdditionalEvents); n > 0 {
		p.next = res.AdditionalEvents[n-1].Sequence + 1
	}
	if p.value, err = e.apps.fold(p.value, res.AdditionalEvents); err != nil {
		return nil, nil, err
	}
	return p, res, nil
}

func (e *Executor[T]) wantsSnapshot(res *SnapshotResult) bool {
	return len(res.AdditionalEvents) > 0 &&
		e.outweighs(res.SnapshotSize, res.EventsSize)
}

// outweighs reports whether eventsSize bytes of events after a snapshot of
// snapSize bytes (0 for none) call for a new snapshot.
func (e *Executor[T]) outweighs(snapSize, eventsSize int) bool {
	if eventsSize == 0 {
		return false
	}
	if snapSize == 0 {
		return true
	}
	return float64(eventsSize)/float64(snapSize) > e.store.config.SnapshotRatio
}

// remember caches p unless the cache holds a later state of the aggregate.
func (e *Executor[T]) remember(key string, p *projection[T]) {
	e.cacheMu.Lock()
	defer e.cacheMu.Unlock()
	e.add(key, p)
}

// rememberCommit caches p, the state a commit of this Executor left.
func (e *Executor[T]) rememberCommit(key string, p *projection[T]) {
	e.cacheMu.Lock()
	defer e.cacheMu.Unlock()
	e.commits++
	e.add(key, p)
}

// rememberLoaded caches p, loaded from the store by a load that began
// when commitCount was since, unless this Executor committed since and
// the cache holds no state of the aggregate to weigh p against: the
// commit's state, later than p, may have been evicted meanwhile, and p
// cached in its place would take a read back before it.
func (e *Executor[T]) rememberLoaded(key string, p *projection[T], since uint64) {
	e.cacheMu.Lock()
	defer e.cacheMu.Unlock()
	if e.commits != since && !e.cache.Contains(key) {
		return
	}
	e.add(key, p)
}

func (e *Executor[T]) commitCount() uint64 {
	e.cacheMu.Lock()
	defer e.cacheMu.Unlock()
	return e.commits
}

// add caches p unless the cache holds a later state. cacheMu is held.
func (e *Executor[T]) add(key string, p *projection[T]) {
	if old, ok := e.cache.Peek(key); ok && old.next > p.next {
		return
	}
	e.cache.Add(key, p)
}

func (e *Executor[T]) succeed(id AggregateID, c *call[T]) {
	evs := nonNil(c.events)
	for _, fn := range e.onSuccess {
		e.runAction(id, fn, c.value, evs)
	}
	for _, fn := range c.actions {
		e.runAction(id, fn, c.value, evs)
	}
}

func (e *Executor[T]) runAction(id AggregateID, fn SuccessAction[T], value T, evs []*Event) {
	defer func() {
		if r := recover(); r != nil {
			e.logger().Error("timebox: OnSuccess action panicked",
				"aggregate", id.String(), "panic", r, "stack", string(debug.Stack()))
		}
	}()
	fn(value, evs)
}

// failBatch finishes calls, run together, with their batch's error. When
// it is a context's error (the batch's context ends only when all of
// theirs have), each call gets its own context's, so a canceled call
// reports context.Canceled even if another's deadline passed.
func failBatch[T any](calls []*call[T], err error) {
	ctxErr := !errors.Is(err, ErrUnknownOutcome) &&
		(errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded))
	for _, c := range calls {
		c.err = err
		if ctxErr && c.ctx.Err() != nil {
			c.err = c.ctx.Err()
		}
	}
}
