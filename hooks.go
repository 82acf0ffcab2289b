package timebox

import (
	"context"
	"errors"
	"reflect"
	"runtime/debug"
	"strings"
	"time"
)

type (
	// Hooks observes a Store and its Executors, for tracing and metrics
	// (the otel subpackage implements it with OpenTelemetry). Set it in
	// Config.Hooks. Every method is called synchronously on the calling
	// goroutine, so it must be quick and safe for concurrent use, and must
	// not call back into the Store. A panic in a hook is recovered and
	// logged at ERROR through Config.Logger: it never changes the outcome
	// of what the hook observes (a panicking AppendStart or CommandStart
	// leaves the context as it was).
	// With no Hooks set the Store pays one nil check per point and
	// allocates nothing. Embed NopHooks to implement only some methods.
	Hooks interface {
		// CommandStart is called when Executor.ExecContext begins, before
		// the call queues; the context it returns is the command's from
		// then on (its Aggregator's Context, the load and the append), so
		// a span started here is the parent of theirs.
		CommandStart(ctx context.Context, info CommandInfo) context.Context
		// CommandEnd is called once per CommandStart, when ExecContext
		// returns, with the context CommandStart returned.
		CommandEnd(ctx context.Context, info CommandDone)

		// AppendStart is called before every append a Store sends to its
		// backend (Store.AppendEventsContext and each Executor attempt);
		// the context it returns is passed to the backend.
		AppendStart(ctx context.Context, info AppendInfo) context.Context
		// AppendEnd is called once per AppendStart with its outcome.
		AppendEnd(ctx context.Context, info AppendDone)

		// Conflict is called when an Executor's append meets a version
		// conflict, with whether the Executor will retry.
		Conflict(ctx context.Context, info ConflictInfo)

		// Load is called after an Executor rebuilt a state from the store
		// (a cache miss): snapshot and trailing events.
		Load(ctx context.Context, info LoadInfo)

		// SnapshotSaved is called after an Executor or Store.PutSnapshot
		// asked the backend to store a snapshot, stored or not (see
		// SnapshotInfo.Skipped).
		SnapshotSaved(ctx context.Context, info SnapshotInfo)
	}

	// NopHooks implements Hooks doing nothing; embed it in a Hooks that
	// observes only some points.
	NopHooks struct{}

	// Scope names what a hook is about: the backend, the aggregate and its
	// type (the ID's first part, a low-cardinality label for metrics).
	Scope struct {
		Backend       string
		AggregateType string
		ID            AggregateID
	}

	// CommandInfo describes an Exec as it starts.
	CommandInfo struct {
		Scope
	}

	// CommandDone describes an Exec as it returns.
	CommandDone struct {
		Scope
		// Attempts is how many appends the call's command took part in,
		// as events or, when it raised none or failed, as a check of the
		// head (0 when the call ended before its first append).
		Attempts int
		// BatchSize is how many queued commands were committed in the
		// call's last append, this one included; 0 when the call failed.
		BatchSize int
		Duration  time.Duration
		Err       error
		Outcome   Outcome
	}

	// AppendInfo describes an append as it is sent.
	AppendInfo struct {
		Scope
		ExpectedSequence int64
		// Events is the batch size: how many events are appended (0 for a
		// check of the head alone).
		Events int
	}

	// AppendDone describes an append's outcome.
	AppendDone struct {
		AppendInfo
		Duration time.Duration
		Err      error
		Outcome  Outcome
		// Sends is how many times the Store sent the append to the
		// backend: 1, or more when it sent it again because the backend
		// was unavailable or a send's outcome was unknown (see
		// Config.RetryTimeout); 0 when it failed before the first.
		Sends int
		// Settled is set when the append succeeded because the backend
		// held it already: a send met a version conflict whose events
		// are this append's own, by ID (an earlier send whose reply was
		// lost had landed, or the caller sent the same events again).
		Settled bool
	}

	// ConflictInfo describes a version conflict an Executor met.
	ConflictInfo struct {
		Scope
		// Attempt is the attempt that conflicted, from 1.
		Attempt          int
		ExpectedSequence int64
		ActualSequence   int64
		// Retry reports whether the Executor runs the command again (false
		// once Config.MaxRetries attempts are spent).
		Retry bool
	}

	// LoadInfo describes a state rebuilt from the store.
	LoadInfo struct {
		Scope
		// Snapshot reports whether a snapshot was used.
		Snapshot bool
		// Events is how many events were read after the snapshot.
		Events   int
		Duration time.Duration
		Err      error
	}

	// SnapshotInfo describes a snapshot the backend was asked to store.
	SnapshotInfo struct {
		Scope
		Sequence int64
		// Conditional is set for an Executor's snapshot, stored only at
		// the aggregate's head.
		Conditional bool
		// Skipped is set, with a nil Err, when the backend stored nothing
		// because a conditional snapshot's aggregate was not live or had
		// moved past Sequence (ErrSnapshotSkipped). A backend that does
		// not report skips leaves it false.
		Skipped  bool
		Duration time.Duration
		Err      error
	}

	// Outcome classes an error for metrics and spans.
	Outcome string
)

// Outcome classes, from OutcomeOf.
const (
	// OutcomeOK is a success.
	OutcomeOK Outcome = "ok"
	// OutcomeConflict is a version conflict or ErrMaxRetriesExceeded.
	OutcomeConflict Outcome = "conflict"
	// OutcomeUnknown is ErrUnknownOutcome: the write may have happened.
	OutcomeUnknown Outcome = "unknown"
	// OutcomeCanceled is the caller's context ending.
	OutcomeCanceled Outcome = "canceled"
	// OutcomeError is any other error: the command's own, a closed
	// store, invalid input, a backend failure.
	OutcomeError Outcome = "error"
	// OutcomeSkipped is a conditional snapshot the backend did not store
	// (SnapshotInfo.Skipped, ErrSnapshotSkipped): not a failure, and not
	// a stored snapshot either.
	OutcomeSkipped Outcome = "skipped"
)

// OutcomeOf returns the class of err. An unknown outcome wins over the
// other classes it may wrap.
func OutcomeOf(err error) Outcome {
	switch {
	case err == nil:
		return OutcomeOK
	case errors.Is(err, ErrUnknownOutcome):
		return OutcomeUnknown
	case errors.Is(err, ErrVersionConflict), errors.Is(err, ErrMaxRetriesExceeded):
		return OutcomeConflict
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return OutcomeCanceled
	case errors.Is(err, ErrSnapshotSkipped):
		return OutcomeSkipped
	}
	return OutcomeError
}

// CommandStart returns ctx.
func (NopHooks) CommandStart(ctx context.Context, _ CommandInfo) context.Context { return ctx }

// CommandEnd does nothing.
func (NopHooks) CommandEnd(context.Context, CommandDone) {}

// AppendStart returns ctx.
func (NopHooks) AppendStart(ctx context.Context, _ AppendInfo) context.Context { return ctx }

// AppendEnd does nothing.
func (NopHooks) AppendEnd(context.Context, AppendDone) {}

// Conflict does nothing.
func (NopHooks) Conflict(context.Context, ConflictInfo) {}

// Load does nothing.
func (NopHooks) Load(context.Context, LoadInfo) {}

// SnapshotSaved does nothing.
func (NopHooks) SnapshotSaved(context.Context, SnapshotInfo) {}

var _ Hooks = NopHooks{}

// scope returns the Scope of id on s's backend.
func (s *Store) scope(id AggregateID) Scope {
	sc := Scope{Backend: backendName(s.backend), ID: id}
	if len(id) > 0 {
		sc.AggregateType = string(id[0])
	}
	return sc
}

// backendName is the last element of the package path of b's type, such
// as "redis" for *redis.Persistence.
func backendName(b Backend) string {
	t := reflect.TypeOf(b)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	p := t.PkgPath()
	return p[strings.LastIndexByte(p, '/')+1:]
}

// callHook calls the hook fn, named name, recovering a panic (see
// hookPanicked).
func callHook[I any](s *Store, name string, fn func(context.Context, I), ctx context.Context, info I) {
	defer s.hookPanicked(name)
	fn(ctx, info)
}

// startHook calls the hook fn, named name, and returns the context it
// returns, or ctx if it panicked (see hookPanicked).
func startHook[I any](
	s *Store, name string, fn func(context.Context, I) context.Context, ctx context.Context, info I,
) (res context.Context) {
	res = ctx
	defer s.hookPanicked(name)
	return fn(ctx, info)
}

// hookPanicked, deferred around a hook's call, recovers its panic and
// logs it, so that the call it observes goes on as if the hook had
// returned.
func (s *Store) hookPanicked(name string) {
	if r := recover(); r != nil {
		s.config.logger().Error("timebox: hook panicked",
			"hook", name, "panic", r, "stack", string(debug.Stack()))
	}
}

// appendObserved is append reported to Config.Hooks.
func (s *Store) appendObserved(ctx context.Context, req AppendRequest) error {
	h := s.config.Hooks
	if h == nil {
		_, err := s.append(ctx, req)
		return err
	}
	info := AppendInfo{
		Scope:            s.scope(req.ID),
		ExpectedSequence: req.ExpectedSequence,
		Events:           len(req.Events),
	}
	ctx = startHook(s, "AppendStart", h.AppendStart, ctx, info)
	start := time.Now()
	sent, err := s.append(ctx, req)
	callHook(s, "AppendEnd", h.AppendEnd, ctx, AppendDone{
		AppendInfo: info,
		Duration:   time.Since(start),
		Err:        err,
		Outcome:    OutcomeOf(err),
		Sends:      sent.sends,
		Settled:    sent.settled,
	})
	return err
}

// getSnapshotObserved is GetSnapshotContext reported to Config.Hooks as a
// Load.
func (s *Store) getSnapshotObserved(
	ctx context.Context, id AggregateID, target any,
) (*SnapshotResult, error) {
	h := s.config.Hooks
	if h == nil {
		return s.GetSnapshotContext(ctx, id, target)
	}
	start := time.Now()
	res, err := s.GetSnapshotContext(ctx, id, target)
	info := LoadInfo{Scope: s.scope(id), Duration: time.Since(start), Err: err}
	if res != nil {
		info.Snapshot = res.SnapshotSize > 0
		info.Events = len(res.AdditionalEvents)
	}
	callHook(s, "Load", h.Load, ctx, info)
	return res, err
}

// putSnapshotObserved is putSnapshot reported to Config.Hooks.
func (s *Store) putSnapshotObserved(
	ctx context.Context, id AggregateID, value any, sequence int64, ifHead bool,
) (int, error) {
	h := s.config.Hooks
	if h == nil {
		return s.putSnapshot(ctx, id, value, sequence, ifHead)
	}
	start := time.Now()
	n, err := s.putSnapshot(ctx, id, value, sequence, ifHead)
	info := SnapshotInfo{
		Scope:       s.scope(id),
		Sequence:    sequence,
		Conditional: ifHead,
		Duration:    time.Since(start),
		Err:         err,
	}
	if errors.Is(err, ErrSnapshotSkipped) {
		info.Skipped, info.Err = true, nil
	}
	callHook(s, "SnapshotSaved", h.SnapshotSaved, ctx, info)
	return n, err
}

// observeConflict reports a version conflict the Executor met at attempt.
func (s *Store) observeConflict(
	ctx context.Context, id AggregateID, attempt int, vc *VersionConflictError,
) {
	h := s.config.Hooks
	if h == nil {
		return
	}
	callHook(s, "Conflict", h.Conflict, ctx, ConflictInfo{
		Scope:            s.scope(id),
		Attempt:          attempt,
		ExpectedSequence: vc.ExpectedSequence,
		ActualSequence:   vc.ActualSequence,
		Retry:            attempt < s.config.MaxRetries,
	})
}

// noObserve is what observe defers when no Hooks are set.
var noObserve = func() {}

// observe reports c, an Exec on id, to Config.Hooks: it calls CommandStart
// now, replacing c.ctx with the context it returns, and returns the
// function that calls CommandEnd with c's outcome. With no Hooks it
// returns noObserve.
func (e *Executor[T]) observe(id AggregateID, c *call[T]) func() {
	h := e.store.config.Hooks
	if h == nil {
		return noObserve
	}
	sc := e.store.scope(id)
	c.ctx = startHook(e.store, "CommandStart", h.CommandStart, c.ctx, CommandInfo{Scope: sc})
	start := time.Now()
	return func() {
		callHook(e.store, "CommandEnd", h.CommandEnd, c.ctx, CommandDone{
			Scope:     sc,
			Attempts:  c.attempts,
			BatchSize: c.batch,
			Duration:  time.Since(start),
			Err:       c.err,
			Outcome:   OutcomeOf(c.err),
		})
	}
}

// attempted counts an append attempt for each of calls, committed
// together, when Hooks are set.
func (e *Executor[T]) attempted(calls []*call[T]) {
	if e.store.config.Hooks == nil {
		return
	}
	committed := 0
	for _, c := range calls {
		if c.err == nil {
			committed++
		}
	}
	for _, c := range calls {
		c.attempts++
		c.batch = 0
		if c.err == nil {
			c.batch = committed
		}
	}
}
