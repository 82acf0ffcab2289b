package conformance

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
)

// queueCases cover how an Executor's per-aggregate queue treats its
// callers' contexts, and that nothing a command does can wedge it.
var queueCases = []testCase{
	{"QueuedCallerHonoursDeadline", testQueuedDeadline},
	{"QueuedCallerHonoursCancel", testQueuedCancel},
	{"BlockedAggregateStallsOnlyItself", testQueueBlockedOnlyItself},
	{"GoexitReleasesQueue", testQueueGoexit},
	{"GoexitInBatch", testQueueGoexitBatch},
	{"ReentrantExec", testQueueReentrant},
	{"ReentrantExecWithCommandContext", testQueueReentrantCtx},
	{"LateCommandNeverCommitted", testQueueLateCommand},
	{"ExpiredCallDroppedFromBatch", testQueueExpiredInBatch},
	{"DeadlineKeepsIdentity", testQueueDeadlineIdentity},
	{"JoinedContextKeepsIdentity", testQueueJoinedIdentity},
	{"RaceWithContexts", testQueueRaceContexts},
}

// blocker is a command that holds its aggregate's queue until released.
type blocker struct {
	started chan struct{}
	release chan struct{}
	once    sync.Once
}

func newBlocker() *blocker {
	return &blocker{started: make(chan struct{}), release: make(chan struct{})}
}

func (b *blocker) cmd(_ tally, ag *timebox.Aggregator[tally]) error {
	b.once.Do(func() { close(b.started) })
	<-b.release
	return timebox.Raise(ag, "item", "blocker")
}

// hold runs b on id in the background and returns once its command runs;
// the returned function releases it and waits for its Exec to succeed.
func (b *blocker) hold(
	t *testing.T, ex *timebox.Executor[tally], id timebox.AggregateID,
) func() {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := ex.Exec(id, b.cmd)
		done <- err
	}()
	waitClosed(t, b.started)
	var once sync.Once
	finish := func() {
		once.Do(func() {
			close(b.release)
			select {
			case err := <-done:
				assert.NoError(t, err)
			case <-time.After(waitTimeout):
				t.Error("blocking command did not finish")
			}
		})
	}
	t.Cleanup(finish)
	return finish
}

func waitClosed(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(waitTimeout):
		t.Fatal("timed out")
	}
}

// execAsync runs cmd on id with ctx in the background.
func execAsync(
	ex *timebox.Executor[tally], ctx context.Context, id timebox.AggregateID,
	cmd timebox.Command[tally],
) <-chan error {
	res := make(chan error, 1)
	go func() {
		_, err := ex.ExecContext(ctx, id, cmd)
		res <- err
	}()
	return res
}

// result waits for an async call's error.
func result(t *testing.T, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(waitTimeout):
		t.Fatal("call did not return")
		return nil
	}
}

func testQueuedDeadline(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("tally", "1")
	ex := tallyExec(st)
	finish := newBlocker().hold(t, ex, id)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	ran := false
	err := result(t, execAsync(ex, ctx, id, func(_ tally, ag *timebox.Aggregator[tally]) error {
		ran = true
		return timebox.Raise(ag, "item", "late")
	}))
	// It returned while the blocker still held the queue.
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.False(t, ran)
	finish()
	require.Equal(t, quoted("blocker"), logItems(t, st, id))
	exec(t, ex, id, add("next"), "blocker", "next")
}

func testQueuedCancel(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("tally", "1")
	ex := tallyExec(st)
	finish := newBlocker().hold(t, ex, id)

	ctx, cancel := context.WithCancel(context.Background())
	first := execAsync(ex, ctx, id, add("cancelled"))
	second := execAsync(ex, context.Background(), id, add("kept"))
	cancel()
	require.ErrorIs(t, result(t, first), context.Canceled)
	finish()
	require.NoError(t, result(t, second))
	require.Equal(t, quoted("blocker", "kept"), logItems(t, st, id))
}

func testQueueBlockedOnlyItself(t *testing.T, s Suite) {
	st := s.store(t)
	a, b := aid("tally", "a"), aid("tally", "b")
	ex := tallyExec(st)
	finish := newBlocker().hold(t, ex, a)
	// Another aggregate of the same executor goes on meanwhile.
	exec(t, ex, b, add("b1"), "b1")
	got, err := ex.Get(b)
	require.NoError(t, err)
	require.Equal(t, []string{"b1"}, got.Items)
	finish()
	exec(t, ex, a, add("a1"), "blocker", "a1")
}

func goexitCmd(tally, *timebox.Aggregator[tally]) error {
	runtime.Goexit()
	return nil
}

// goexitAsync runs goexitCmd on id and waits until its goroutine is gone.
func goexitAsync(ex *timebox.Executor[tally], id timebox.AggregateID) <-chan struct{} {
	return goexitOr(func() { _, _ = ex.Exec(id, goexitCmd) })
}

func testQueueGoexit(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("tally", "1")
	ex := tallyExec(st)
	exec(t, ex, id, add("a"), "a")
	waitClosed(t, goexitAsync(ex, id))

	ctx, cancel := contextWithTimeout(waitTimeout)
	defer cancel()
	got, err := ex.ExecContext(ctx, id, add("b"))
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b"}, got.Items)
	require.Equal(t, quoted("a", "b"), logItems(t, st, id))
}

// testQueueGoexitBatch queues a command calling runtime.Goexit with a
// mate. The goroutine running the batch ends, and it may be the mate's:
// then the mate's Exec never returns. Either way the mate's event is
// written only when its Exec succeeded, and the queue moves on.
func testQueueGoexitBatch(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("tally", "1")
	ex := tallyExec(st)
	finish := newBlocker().hold(t, ex, id)
	mateErr := make(chan error, 1)
	mateGone := goexitOr(func() {
		_, err := ex.Exec(id, add("mate"))
		mateErr <- err
	})
	gone := goexitAsync(ex, id)
	finish()
	waitClosed(t, gone)
	waitClosed(t, mateGone)
	want := quoted("blocker")
	select {
	case err := <-mateErr:
		if err == nil {
			want = quoted("blocker", "mate")
		} else {
			require.ErrorIs(t, err, timebox.ErrCommandPanicked)
		}
	default: // the mate led the batch and its goroutine ended
	}
	require.Equal(t, want, logItems(t, st, id))
	ctx, cancel := contextWithTimeout(waitTimeout)
	defer cancel()
	_, err := ex.ExecContext(ctx, id, add("after"))
	require.NoError(t, err)
}

// goexitOr runs fn in a goroutine and returns a channel closed once that
// goroutine is gone, whether fn returned or the goroutine was ended.
func goexitOr(fn func()) <-chan struct{} {
	gone := make(chan struct{})
	go func() {
		defer close(gone)
		fn()
	}()
	return gone
}

func testQueueReentrant(t *testing.T, s Suite) {
	st := s.store(t)
	id, other := aid("tally", "1"), aid("tally", "2")
	ex := tallyExec(st)
	exec(t, ex, id, func(_ tally, ag *timebox.Aggregator[tally]) error {
		_, err := ex.Exec(id, add("inner"))
		require.ErrorIs(t, err, timebox.ErrReentrantExec)
		require.ErrorContains(t, err, id.String())
		// Other aggregates are fine from inside a command.
		exec(t, ex, other, add("o"), "o")
		got, err := ex.Get(id)
		require.NoError(t, err)
		require.Empty(t, got.Items)
		return timebox.Raise(ag, "item", "outer")
	}, "outer")
	require.Equal(t, quoted("outer"), logItems(t, st, id))
	exec(t, ex, id, add("next"), "outer", "next")
}

func testQueueReentrantCtx(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("tally", "1")
	ex := tallyExec(st)
	finish := newBlocker().hold(t, ex, id)
	// A batch of several: the reentrant call comes from the goroutine
	// that runs every command of the batch.
	var errs [3]<-chan error
	for i := range errs {
		errs[i] = execAsync(ex, context.Background(), id,
			func(_ tally, ag *timebox.Aggregator[tally]) error {
				_, err := ex.ExecContext(ag.Context(), id, add("inner"))
				if !errors.Is(err, timebox.ErrReentrantExec) {
					return err
				}
				return timebox.Raise(ag, "item", "outer")
			})
	}
	finish()
	for _, ch := range errs {
		require.NoError(t, result(t, ch))
	}
	require.Equal(t, quoted("blocker", "outer", "outer", "outer"), logItems(t, st, id))
}

// untilDone is a command that raises its event only once its context is
// done: it outlives its ctx.
func untilDone(v string) timebox.Command[tally] {
	return func(_ tally, ag *timebox.Aggregator[tally]) error {
		<-ag.Context().Done()
		return timebox.Raise(ag, "item", v)
	}
}

func testQueueLateCommand(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("tally", "1")
	ex := tallyExec(st)
	exec(t, ex, id, add("a"), "a")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := ex.ExecContext(ctx, id, untilDone("late"))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.NotErrorIs(t, err, context.Canceled)

	ctx, cancel = context.WithCancel(context.Background())
	_, err = ex.ExecContext(ctx, id, func(s tally, ag *timebox.Aggregator[tally]) error {
		cancel()
		return untilDone("cancelled")(s, ag)
	})
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, quoted("a"), logItems(t, st, id))
	exec(t, tallyExec(st), id, noop, "a")
}

func testQueueExpiredInBatch(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("tally", "1")
	ex := tallyExec(st)
	finish := newBlocker().hold(t, ex, id)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	expiring := execAsync(ex, ctx, id, func(_ tally, ag *timebox.Aggregator[tally]) error {
		cancel() // its ctx is done once it has run
		return timebox.Raise(ag, "item", "expired")
	})
	var got tally
	kept := make(chan error, 1)
	go func() {
		var err error
		got, err = ex.Exec(id, add("kept"))
		kept <- err
	}()
	finish()
	require.ErrorIs(t, result(t, expiring), context.Canceled)
	require.NoError(t, result(t, kept))
	require.Equal(t, []string{"blocker", "kept"}, got.Items)
	require.Equal(t, quoted("blocker", "kept"), logItems(t, st, id))
	exec(t, tallyExec(st), id, noop, "blocker", "kept")
}

func testQueueDeadlineIdentity(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("tally", "1")
	seed(t, st, id, items("a", 1)...)
	expired, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	cancelled, cancel2 := context.WithCancel(context.Background())
	cancel2()
	for _, tc := range []struct {
		ctx  context.Context
		want error
		not  error
	}{
		{expired, context.DeadlineExceeded, context.Canceled},
		{cancelled, context.Canceled, context.DeadlineExceeded},
	} {
		check := func(what string, err error) {
			t.Helper()
			require.ErrorIs(t, err, tc.want, what)
			require.NotErrorIs(t, err, tc.not, what)
		}
		check("append", st.AppendEventsContext(tc.ctx, id, 1, items("b", 1)))
		check("append empty", st.AppendEventsContext(tc.ctx, id, 1, nil))
		_, err := st.GetEventsContext(tc.ctx, id, 0)
		check("events", err)
		var v tally
		_, err = st.GetSnapshotContext(tc.ctx, id, &v)
		check("snapshot", err)
		_, err = tallyExec(st).ExecContext(tc.ctx, id, add("x"))
		check("exec", err)
		_, err = tallyExec(st).GetContext(tc.ctx, id)
		check("get", err)
		_, err = tallyExec(st).GetLatest(tc.ctx, id)
		check("get latest", err)
	}
	require.Equal(t, quoted("a0"), logItems(t, st, id))
}

// testQueueJoinedIdentity runs calls, likely batched, whose contexts all
// end while their append is under way (the Indexer holds it), so the
// backend sees the batch's joined context done: each still gets an error
// matching its deadline, and nothing is written.
func testQueueJoinedIdentity(t *testing.T, s Suite) {
	const n = 3
	var ctxs [n]context.Context
	allDone := make(chan struct{})
	var once sync.Once
	indexer := func(evs []*timebox.Event) []*timebox.Index {
		if evs[0].Type == "slow" {
			once.Do(func() {
				for _, ctx := range ctxs {
					<-ctx.Done()
				}
				close(allDone)
			})
			<-allDone
		}
		return nil
	}
	st := s.store(t, timebox.Config{Indexer: indexer})
	id := aid("tally", "1")
	ex := tallyExec(st)
	finish := newBlocker().hold(t, ex, id)
	var errs [n]<-chan error
	for i := range ctxs {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		ctxs[i] = ctx
		errs[i] = execAsync(ex, ctx, id, func(_ tally, ag *timebox.Aggregator[tally]) error {
			return timebox.Raise(ag, "slow", i)
		})
	}
	finish()
	for _, ch := range errs {
		err := result(t, ch)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.NotErrorIs(t, err, context.Canceled)
	}
	require.Equal(t, quoted("blocker"), logItems(t, st, id))
}

// testQueueRaceContexts races workers on one aggregate through one
// Executor where some calls give up while queued or running and some
// commands outlive their context: the log holds exactly the acknowledged
// events (bar unknown outcomes), once each, gapless, and each acknowledged
// caller got the state its own event made; no call that failed with its
// context's error wrote anything.
func testQueueRaceContexts(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("race", rand.Text())
	ex := timebox.NewExecutor(st, newCounter, counterAppliers)
	l := newLedger()
	var gaveUp sync.Map
	together(8, func(w int) {
		worker := fmt.Sprintf("w%d", w)
		for c := range 25 {
			p := fmt.Sprintf("%s-c%d", worker, c)
			ctx, cancel := context.WithCancel(context.Background())
			cmd := raceCommand(p)
			switch c % 4 {
			case 1: // may give up while queued or running
				cancel()
				ctx, cancel = context.WithTimeout(context.Background(),
					time.Duration(c%3)*time.Millisecond)
			case 2: // outlives its context
				cmd = func(s counter, ag *timebox.Aggregator[counter]) error {
					cancel()
					return raceCommand(p)(s, ag)
				}
			}
			res, err := ex.ExecContext(ctx, id, cmd)
			cancel()
			if c%4 == 2 {
				assert.ErrorIs(t, err, context.Canceled)
			}
			if ctxErr(err) && !errors.Is(err, timebox.ErrUnknownOutcome) {
				gaveUp.Store(p, true)
				continue
			}
			l.recordExec(worker, p, res, err)
		}
	})
	l.requireErrors(t, true)
	l.requireLog(t, l.awaitAcked(t, st, id))
	for _, e := range events(t, st, id) {
		_, ok := gaveUp.Load(payload(t, e))
		require.False(t, ok, "event %d of a call that gave up", e.Sequence)
	}
}

func ctxErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
