package timebox_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/testlog"
	"github.com/kode4food/timebox/memory"
)

// These tests cover the outcome of each call of a batch: several callers
// queued behind a running command on one aggregate, run and appended
// together.

type marks struct {
	Marks []string
}

var markAppliers = timebox.Appliers[marks]{
	"mark": timebox.MakeApplier(func(s marks, _ *timebox.Event, m string) marks {
		s.Marks = append(slices.Clone(s.Marks), m)
		return s
	}),
}

func newMarks(t *testing.T, cfg timebox.Config) (*timebox.Store, *timebox.Executor[marks]) {
	t.Helper()
	store, err := memory.NewPersistence().NewStore(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	return store, newMarksOn(store)
}

func newMarksOn(store *timebox.Store) *timebox.Executor[marks] {
	return timebox.NewExecutor(store, func() marks { return marks{} }, markAppliers)
}

func mark(m string) timebox.Command[marks] {
	return func(_ marks, ag *timebox.Aggregator[marks]) error {
		return timebox.Raise(ag, "mark", m)
	}
}

// markUnless raises mark m, or fails if the state holds mark seen.
func markUnless(m, seen string) timebox.Command[marks] {
	return func(s marks, ag *timebox.Aggregator[marks]) error {
		if slices.Contains(s.Marks, seen) {
			return fmt.Errorf("%s refused: saw %s", m, seen)
		}
		return timebox.Raise(ag, "mark", m)
	}
}

// holdQueue runs a command on id that blocks until the returned release
// is called, so the calls queued meanwhile run as one batch after it.
func holdQueue(t *testing.T, ex *timebox.Executor[marks], id timebox.AggregateID) func() {
	t.Helper()
	entered, release, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		_, err := ex.Exec(id, func(marks, *timebox.Aggregator[marks]) error {
			close(entered)
			<-release
			return nil
		})
		done <- err
	}()
	<-entered
	return func() {
		close(release)
		require.NoError(t, <-done)
	}
}

// queue starts an Exec of cmd on id with ctx, waits until it is queued
// (the n-th waiting call), and returns where its error will be sent.
func queue(
	t *testing.T, ex *timebox.Executor[marks], ctx context.Context,
	id timebox.AggregateID, n int, cmd timebox.Command[marks],
) <-chan error {
	t.Helper()
	res := make(chan error, 1)
	go func() {
		_, err := ex.ExecContext(ctx, id, cmd)
		res <- err
	}()
	waitFor(t, func() bool { return ex.Pending(id) == n })
	return res
}

// TestDroppedCallDecidesNoOther: a call whose ctx ends after its command
// ran is dropped from the batch, and the others run again without it; a
// call that failed only because it saw the dropped call's event must run
// again too, and succeed.
func TestDroppedCallDecidesNoOther(t *testing.T) {
	store, ex := newMarks(t, timebox.Config{})
	id := timebox.NewAggregateID("batch", "drop")
	release := holdQueue(t, ex, id)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errA := queue(t, ex, ctx, id, 1, func(_ marks, ag *timebox.Aggregator[marks]) error {
		cancel() // A outlives its ctx: it is dropped before the append
		return timebox.Raise(ag, "mark", "A")
	})
	errB := queue(t, ex, context.Background(), id, 2, markUnless("B", "A"))
	release()
	require.ErrorIs(t, <-errA, context.Canceled)
	require.NoError(t, <-errB, "B was decided on A's dropped event")
	evs, err := store.GetEvents(id, 0)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	require.JSONEq(t, `"B"`, string(evs[0].Data))
}

// TestConflictRunsFailedCallsAgain: after a conflict every call of the
// batch runs again on the new events, the ones that failed too: B failed
// only because of A's event, which the conflict's events then refuse.
func TestConflictRunsFailedCallsAgain(t *testing.T) {
	store, ex := newMarks(t, timebox.Config{})
	id := timebox.NewAggregateID("batch", "conflict")
	release := holdQueue(t, ex, id)
	var external sync.Once
	errA := queue(t, ex, context.Background(), id, 1, func(s marks, ag *timebox.Aggregator[marks]) error {
		if slices.Contains(s.Marks, "X") {
			return errors.New("A: closed by X")
		}
		var err error
		external.Do(func() { // another writer gets there first
			err = store.AppendEvents(id, ag.NextSequence(), []*timebox.Event{
				{Type: "mark", Data: []byte(`"X"`), Timestamp: time.Now()},
			})
		})
		if err != nil {
			return err
		}
		return timebox.Raise(ag, "mark", "A")
	})
	errB := queue(t, ex, context.Background(), id, 2, markUnless("B", "A"))
	release()
	require.ErrorContains(t, <-errA, "closed by X")
	require.NoError(t, <-errB, "B's refusal rested on A's event, never committed")
	st, err := ex.GetLatest(context.Background(), id)
	require.NoError(t, err)
	require.Equal(t, []string{"X", "B"}, st.Marks)
}

// TestRepeatedCommandIDOnStaleExecutor: a command ID already run, sent
// again to an Executor whose cached state predates it, returns the
// current state and no error, though its command fails on the stale state:
// a failed command's outcome is checked against the head too.
func TestRepeatedCommandIDOnStaleExecutor(t *testing.T) {
	store, ex1 := newMarks(t, timebox.Config{})
	ex2 := newMarksOn(store)
	id := timebox.NewAggregateID("order", "1")
	bg := context.Background()
	ship := func(s marks, ag *timebox.Aggregator[marks]) error {
		if !slices.Contains(s.Marks, "paid") {
			return errors.New("not paid")
		}
		if slices.Contains(s.Marks, "shipped") {
			return errors.New("already shipped")
		}
		return timebox.Raise(ag, "mark", "shipped")
	}
	_, err := ex1.Exec(id, mark("created"))
	require.NoError(t, err)
	_, err = ex2.Get(id) // ex2 caches the state before payment
	require.NoError(t, err)
	_, err = ex1.Exec(id, mark("paid"))
	require.NoError(t, err)
	_, err = ex1.ExecContext(timebox.WithCommandID(bg, "ship-1"), id, ship)
	require.NoError(t, err)

	st, err := ex2.ExecContext(timebox.WithCommandID(bg, "ship-1"), id, ship)
	require.NoError(t, err)
	require.Equal(t, []string{"created", "paid", "shipped"}, st.Marks)
	_, err = ex2.Exec(id, ship)
	require.EqualError(t, err, "already shipped")
}

// TestBatchContextErrorsAreEachCallsOwn: two calls appended together whose
// contexts both end while the append is on its way get their own
// context's error: the canceled one context.Canceled, though the other's
// deadline passed.
func TestBatchContextErrorsAreEachCallsOwn(t *testing.T) {
	var ctxs [2]context.Context
	var cancels [2]context.CancelFunc
	ready := make(chan struct{})
	var once sync.Once
	// The Indexer runs while the batch's append is on its way: it holds
	// it until both contexts have ended.
	indexer := func(evs []*timebox.Event) []*timebox.Index {
		once.Do(func() {
			<-ready
			cancels[0]()
			for _, c := range ctxs {
				<-c.Done()
			}
		})
		return nil
	}
	_, ex := newMarks(t, timebox.Config{Indexer: indexer})
	id := timebox.NewAggregateID("batch", "ctx")
	release := holdQueue(t, ex, id)
	ctxs[0], cancels[0] = context.WithCancel(context.Background())
	ctxs[1], cancels[1] = context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancels[0]()
	defer cancels[1]()
	errA := queue(t, ex, ctxs[0], id, 1, mark("a"))
	errB := queue(t, ex, ctxs[1], id, 2, mark("b"))
	close(ready)
	release()
	require.ErrorIs(t, <-errA, context.Canceled)
	require.ErrorIs(t, <-errB, context.DeadlineExceeded)
}

// TestApplierPanicFailsItsCall: a call whose raised event's Applier panics
// fails with ErrApplierPanicked and writes nothing; the others of its
// batch go on.
func TestApplierPanicFailsItsCall(t *testing.T) {
	store, err := memory.NewPersistence().NewStore(timebox.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	apps := timebox.Appliers[marks]{
		"mark": markAppliers["mark"],
		"boom": func(marks, *timebox.Event) marks { panic("applier boom") },
	}
	ex := timebox.NewExecutor(store, func() marks { return marks{} }, apps)
	id := timebox.NewAggregateID("batch", "panic")
	release := holdQueue(t, ex, id)
	var errs []<-chan error
	for i, typ := range []timebox.EventType{"mark", "boom", "mark"} {
		errs = append(errs, queue(t, ex, context.Background(), id, i+1,
			func(_ marks, ag *timebox.Aggregator[marks]) error {
				return timebox.Raise(ag, typ, string(typ))
			}))
	}
	release()
	require.NoError(t, <-errs[0])
	require.ErrorIs(t, <-errs[1], timebox.ErrApplierPanicked)
	require.NoError(t, <-errs[2])
	st, err := ex.GetLatest(context.Background(), id)
	require.NoError(t, err)
	require.Equal(t, []string{"mark", "mark"}, st.Marks)
}

// panicHooks panics in every hook.
type panicHooks struct{}

func (panicHooks) CommandStart(context.Context, timebox.CommandInfo) context.Context {
	panic("CommandStart")
}
func (panicHooks) CommandEnd(context.Context, timebox.CommandDone) { panic("CommandEnd") }
func (panicHooks) AppendStart(context.Context, timebox.AppendInfo) context.Context {
	panic("AppendStart")
}
func (panicHooks) AppendEnd(context.Context, timebox.AppendDone)       { panic("AppendEnd") }
func (panicHooks) Conflict(context.Context, timebox.ConflictInfo)      { panic("Conflict") }
func (panicHooks) Load(context.Context, timebox.LoadInfo)              { panic("Load") }
func (panicHooks) SnapshotSaved(context.Context, timebox.SnapshotInfo) { panic("SnapshotSaved") }

// TestHookPanicsChangeNoOutcome: hooks that panic at every point are
// logged, and every call goes on as if they had returned: an Exec whose
// AppendEnd panicked after its append once reported a *PanicError for
// events it had written.
func TestHookPanicsChangeNoOutcome(t *testing.T) {
	var logs testlog.Buffer
	store, ex := newMarks(t, timebox.Config{
		Hooks: panicHooks{}, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	id := timebox.NewAggregateID("hooks", "panic")
	st, err := ex.Exec(id, mark("a"))
	require.NoError(t, err)
	require.Equal(t, []string{"a"}, st.Marks)
	require.NoError(t, store.AppendEvents(id, 1, []*timebox.Event{
		{Type: "mark", Data: []byte(`"b"`)},
	}))
	st, err = ex.Exec(id, mark("c")) // a conflict, then a fresh load
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b", "c"}, st.Marks)
	require.NoError(t, ex.SaveSnapshot(id))
	st, err = newMarksOn(store).Get(id)
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b", "c"}, st.Marks)
	for _, hook := range []string{
		"CommandStart", "CommandEnd", "AppendStart", "AppendEnd", "Conflict", "Load", "SnapshotSaved",
	} {
		require.Contains(t, logs.String(), "hook panicked\" hook="+hook, hook)
	}
}

// TestBatchesWithFailuresRace races callers on one aggregate through two
// Executors (batches, and conflicts between them), a fifth of the
// commands failing on their own and some callers canceling: every
// acknowledged command's event is stored once, no failed or canceled
// one's, in gapless sequences.
func TestBatchesWithFailuresRace(t *testing.T) {
	store, ex1 := newMarks(t, timebox.Config{MaxRetries: 1000})
	exs := []*timebox.Executor[marks]{ex1, newMarksOn(store)}
	id := timebox.NewAggregateID("batch", "race")
	const workers, each = 8, 40
	var mu sync.Mutex
	acked := map[string]bool{}
	var wg sync.WaitGroup
	for g := range workers {
		wg.Go(func() {
			for i := range each {
				m := fmt.Sprintf("%d-%d", g, i)
				ctx, cancel := context.WithCancel(context.Background())
				_, err := exs[(g+i)%2].ExecContext(ctx, id, func(s marks, ag *timebox.Aggregator[marks]) error {
					if i%5 == 0 {
						return errors.New("refused")
					}
					if i%7 == 3 {
						cancel()
					}
					return timebox.Raise(ag, "mark", m)
				})
				cancel()
				switch {
				case err == nil:
					mu.Lock()
					acked[m] = true
					mu.Unlock()
				case i%5 == 0:
					assert.EqualError(t, err, "refused")
				default:
					assert.ErrorIs(t, err, context.Canceled)
				}
			}
		})
	}
	wg.Wait()
	evs, err := store.GetEvents(id, 0)
	require.NoError(t, err)
	stored := map[string]bool{}
	for i, ev := range evs {
		require.EqualValues(t, i, ev.Sequence)
		var m string
		require.NoError(t, json.Unmarshal(ev.Data, &m))
		require.False(t, stored[m], "%s stored twice", m)
		stored[m] = true
	}
	require.Equal(t, acked, stored)
	require.Len(t, stored, workers*(each-each/5-each/7))
}

// doneByName records each call's CommandDone by the name its ctx carries.
type doneByName struct {
	timebox.NopHooks
	mu   sync.Mutex
	done map[string]timebox.CommandDone
}

type callName struct{}

func (r *doneByName) CommandEnd(ctx context.Context, info timebox.CommandDone) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n, ok := ctx.Value(callName{}).(string); ok {
		r.done[n] = info
	}
}

// TestBatchSizeCountsCommitted: CommandDone.BatchSize counts the commands
// committed in the call's append, not a failed one that took part in it.
func TestBatchSizeCountsCommitted(t *testing.T) {
	rec := &doneByName{done: map[string]timebox.CommandDone{}}
	_, ex := newMarks(t, timebox.Config{Hooks: rec})
	id := timebox.NewAggregateID("batch", "size")
	release := holdQueue(t, ex, id)
	bg := context.Background()
	errA := queue(t, ex, context.WithValue(bg, callName{}, "A"), id, 1, mark("A"))
	errB := queue(t, ex, context.WithValue(bg, callName{}, "B"), id, 2,
		func(marks, *timebox.Aggregator[marks]) error { return errors.New("B refused") })
	release()
	require.NoError(t, <-errA)
	require.EqualError(t, <-errB, "B refused")
	rec.mu.Lock()
	defer rec.mu.Unlock()
	require.Equal(t, 1, rec.done["A"].BatchSize)
	require.Equal(t, 1, rec.done["A"].Attempts)
	require.Equal(t, 0, rec.done["B"].BatchSize)
	require.Equal(t, 1, rec.done["B"].Attempts, "B took part as a check of the head")
}

// TestGoexitFailsTheWholeBatch: a batch [A, B, C] where A raises, B fails
// only because it saw A's event, and C calls runtime.Goexit: nothing is
// written, so B's own error, which rests on A's event, gives way to the
// batch's.
func TestGoexitFailsTheWholeBatch(t *testing.T) {
	store, ex := newMarks(t, timebox.Config{})
	id := timebox.NewAggregateID("batch", "goexit")
	release := holdQueue(t, ex, id)
	// A leads the next batch, on a goroutine of its own: Goexit in the
	// batch ends the leader's goroutine.
	go func() { _, _ = ex.Exec(id, mark("A")) }()
	waitFor(t, func() bool { return ex.Pending(id) == 1 })
	errB := queue(t, ex, context.Background(), id, 2, markUnless("B", "A"))
	errC := queue(t, ex, context.Background(), id, 3, func(marks, *timebox.Aggregator[marks]) error {
		runtime.Goexit()
		return nil
	})
	release()
	require.ErrorIs(t, <-errB, timebox.ErrCommandPanicked)
	require.ErrorIs(t, <-errC, timebox.ErrCommandPanicked)
	evs, err := store.GetEvents(id, 0)
	require.NoError(t, err)
	require.Empty(t, evs)
}

// slowSnapshots holds every SaveSnapshot while armed, until released.
type slowSnapshots struct {
	*memory.Persistence
	mu      sync.Mutex
	armed   bool
	blocked chan struct{}
	release chan struct{}
}

func (b *slowSnapshots) SaveSnapshot(ctx context.Context, req timebox.SnapshotRequest) error {
	b.mu.Lock()
	armed := b.armed
	b.armed = false
	b.mu.Unlock()
	if armed {
		close(b.blocked)
		<-b.release
	}
	return b.Persistence.SaveSnapshot(ctx, req)
}

// TestCtxEndsWhileAwaitingSnapshot: a call of a batch whose ctx ends
// after its command ran, while the batch waits for a background snapshot
// to go out before its append, is dropped with ctx's error: the ctx check
// comes after that wait.
func TestCtxEndsWhileAwaitingSnapshot(t *testing.T) {
	b := &slowSnapshots{
		Persistence: memory.NewPersistence(),
		blocked:     make(chan struct{}), release: make(chan struct{}),
	}
	store, err := timebox.NewStore(b, timebox.Config{SnapshotMinEvents: 1, SnapshotRatio: 0.0001})
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	ex := newMarksOn(store)
	id := timebox.NewAggregateID("await", "1")
	_, err = ex.Exec(id, mark("first"))
	require.NoError(t, err)
	require.Eventually(t, func() bool { // let the first background snapshot end
		res, err := store.GetSnapshot(id, &marks{})
		return err == nil && res.NextSequence == 1
	}, 10*time.Second, time.Millisecond)

	entered, release0 := make(chan struct{}), make(chan struct{})
	l0 := make(chan error, 1)
	go func() {
		_, err := ex.Exec(id, func(_ marks, ag *timebox.Aggregator[marks]) error {
			close(entered)
			<-release0
			return timebox.Raise(ag, "mark", "L0")
		})
		l0 <- err
	}()
	<-entered
	ctxB, cancelB := context.WithCancel(context.Background())
	defer cancelB()
	ranC := make(chan struct{}, 4)
	errB := queue(t, ex, ctxB, id, 1, mark("B"))
	errC := queue(t, ex, context.Background(), id, 2, func(_ marks, ag *timebox.Aggregator[marks]) error {
		ranC <- struct{}{}
		return timebox.Raise(ag, "mark", "C")
	})
	b.mu.Lock()
	b.armed = true
	b.mu.Unlock()
	close(release0)
	require.NoError(t, <-l0)
	select {
	case <-b.blocked:
	case <-time.After(10 * time.Second):
		t.Fatal("background snapshot not started")
	}
	<-ranC
	// The batch ran its commands and waits for the snapshot now (or
	// will, shortly): either way B's ctx ends before the append.
	cancelB()
	close(b.release)
	eb, ec := <-errB, <-errC
	require.NoError(t, ec)
	evs, err := store.GetEvents(id, 0)
	require.NoError(t, err)
	var got []string
	for _, ev := range evs {
		got = append(got, string(ev.Data))
	}
	require.ErrorIs(t, eb, context.Canceled, "B's ctx ended before the append was sent")
	require.Equal(t, []string{`"first"`, `"L0"`, `"C"`}, got)
}

// TestReentryCycleAcrossGoroutines: X's command Execs Y, whose command,
// run by the caller that leads Y's queue on another goroutine, Execs X:
// X's command waits for Y's batch, which waits for X's queue. The inner
// Exec fails with ErrReentrantExec instead of waiting for ever.
func TestReentryCycleAcrossGoroutines(t *testing.T) {
	_, ex := newMarks(t, timebox.Config{})
	x, y := timebox.NewAggregateID("cycle", "x"), timebox.NewAggregateID("cycle", "y")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	release := holdQueue(t, ex, y)
	// H waits first, so it leads Y's next batch, which takes in the call
	// X's command makes.
	h := queue(t, ex, ctx, y, 1, mark("h"))
	inner := make(chan error, 1)
	outer := make(chan error, 1)
	go func() {
		_, err := ex.ExecContext(ctx, x, func(_ marks, ag *timebox.Aggregator[marks]) error {
			if _, err := ex.ExecContext(ctx, y, func(_ marks, ag *timebox.Aggregator[marks]) error {
				_, err := ex.ExecContext(ctx, x, mark("inner"))
				inner <- err
				return timebox.Raise(ag, "mark", "y")
			}); err != nil {
				return err
			}
			return timebox.Raise(ag, "mark", "x")
		})
		outer <- err
	}()
	waitFor(t, func() bool { return ex.Pending(y) == 2 })
	release()
	require.NoError(t, <-h)
	require.ErrorIs(t, <-inner, timebox.ErrReentrantExec)
	require.NoError(t, <-outer)
	st, err := ex.Get(x)
	require.NoError(t, err)
	require.Equal(t, []string{"x"}, st.Marks)
	st, err = ex.Get(y)
	require.NoError(t, err)
	require.Equal(t, []string{"h", "y"}, st.Marks)
}
