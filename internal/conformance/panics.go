package conformance

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
)

// panicCases cover panics in user code: each surfaces as a *PanicError
// naming its component, is logged once with its stack, writes nothing,
// and leaves the aggregate usable.
var panicCases = []testCase{
	{"Command", testPanicCommand},
	{"CommandErrorValue", testPanicErrorValue},
	{"ApplierInRaise", testPanicApplierRaise},
	{"ApplierOnLoad", testPanicApplierLoad},
	{"Indexer", testPanicIndexer},
	{"Constructor", testPanicConstructor},
}

// logRecorder is a slog.Handler keeping the records it is given.
type logRecorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }

func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r.Clone())
	return nil
}

// requirePanicLogged checks that exactly n ERROR records were logged, each
// with a stack.
func (l *logRecorder) requirePanicLogged(t *testing.T, n int) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs int
	for _, r := range l.recs {
		if r.Level != slog.LevelError {
			continue
		}
		errs++
		var stack string
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "stack" {
				stack = a.Value.String()
			}
			return true
		})
		require.True(t, strings.HasPrefix(stack, "goroutine "), "record %q has no stack", r.Message)
	}
	require.Equal(t, n, errs)
}

// panicStore returns a store logging to a recorder.
func panicStore(t *testing.T, s Suite, cfg timebox.Config) (*timebox.Store, *logRecorder) {
	l := &logRecorder{}
	cfg.Logger = slog.New(l)
	return s.store(t, cfg), l
}

// requirePanic checks that err is a *PanicError of kind with a stack.
func requirePanic(t *testing.T, err, kind error) *timebox.PanicError {
	t.Helper()
	require.ErrorIs(t, err, kind)
	var pe *timebox.PanicError
	require.ErrorAs(t, err, &pe)
	require.NotEmpty(t, pe.Stack)
	for _, k := range []error{
		timebox.ErrCommandPanicked, timebox.ErrApplierPanicked,
		timebox.ErrIndexerPanicked, timebox.ErrConstructorPanicked,
	} {
		if k != kind {
			require.NotErrorIs(t, err, k)
		}
	}
	return pe
}

func testPanicCommand(t *testing.T, s Suite) {
	st, l := panicStore(t, s, timebox.Config{})
	id := aid("tally", "1")
	ex := tallyExec(st)
	_, err := ex.Exec(id, func(_ tally, ag *timebox.Aggregator[tally]) error {
		if err := timebox.Raise(ag, "item", "lost"); err != nil {
			return err
		}
		panic("boom")
	})
	pe := requirePanic(t, err, timebox.ErrCommandPanicked)
	require.Equal(t, "boom", pe.Value)
	require.Empty(t, events(t, st, id))
	l.requirePanicLogged(t, 1)
	exec(t, ex, id, add("a"), "a")
}

var errPanicValue = errors.New("panic value")

func testPanicErrorValue(t *testing.T, s Suite) {
	st, l := panicStore(t, s, timebox.Config{})
	_, err := tallyExec(st).Exec(aid("tally", "1"), func(tally, *timebox.Aggregator[tally]) error {
		panic(errPanicValue)
	})
	requirePanic(t, err, timebox.ErrCommandPanicked)
	require.ErrorIs(t, err, errPanicValue)
	l.requirePanicLogged(t, 1)
}

var boomAppliers = timebox.Appliers[tally]{
	"item": tallyAppliers["item"],
	"boom": func(tally, *timebox.Event) tally { panic("applier boom") },
}

func testPanicApplierRaise(t *testing.T, s Suite) {
	st, l := panicStore(t, s, timebox.Config{})
	id := aid("tally", "1")
	ex := timebox.NewExecutor(st, newTally, boomAppliers)
	_, err := ex.Exec(id, func(_ tally, ag *timebox.Aggregator[tally]) error {
		return timebox.Raise(ag, "boom", 1)
	})
	requirePanic(t, err, timebox.ErrApplierPanicked)
	require.Empty(t, events(t, st, id))
	l.requirePanicLogged(t, 1)
	exec(t, ex, id, add("a"), "a")
}

func testPanicApplierLoad(t *testing.T, s Suite) {
	st, l := panicStore(t, s, timebox.Config{})
	id := aid("tally", "1")
	seed(t, st, id, ev("boom", `1`))
	ex := timebox.NewExecutor(st, newTally, boomAppliers)
	_, err := ex.Exec(id, add("x"))
	requirePanic(t, err, timebox.ErrApplierPanicked)
	_, err = ex.Get(id)
	requirePanic(t, err, timebox.ErrApplierPanicked)
	require.Len(t, events(t, st, id), 1)
	l.requirePanicLogged(t, 2)
	// Without the panicking applier the aggregate loads.
	exec(t, tallyExec(st), id, add("x"), "x")
}

func testPanicIndexer(t *testing.T, s Suite) {
	indexer := func(evs []*timebox.Event) []*timebox.Index {
		if evs[0].Type == "boom" {
			panic("indexer boom")
		}
		return nil
	}
	st, l := panicStore(t, s, timebox.Config{Indexer: indexer})
	id := aid("tally", "1")
	err := st.AppendEvents(id, 0, []*timebox.Event{ev("boom", `1`)})
	requirePanic(t, err, timebox.ErrIndexerPanicked)
	ex := tallyExec(st)
	_, err = ex.Exec(id, func(_ tally, ag *timebox.Aggregator[tally]) error {
		return timebox.Raise(ag, "boom", 1)
	})
	requirePanic(t, err, timebox.ErrIndexerPanicked)
	require.Empty(t, events(t, st, id))
	l.requirePanicLogged(t, 2)
	exec(t, ex, id, add("a"), "a")
}

func testPanicConstructor(t *testing.T, s Suite) {
	st, l := panicStore(t, s, timebox.Config{})
	id := aid("tally", "1")
	ex := timebox.NewExecutor(st, func() tally { panic("constructor boom") }, tallyAppliers)
	_, err := ex.Exec(id, add("a"))
	requirePanic(t, err, timebox.ErrConstructorPanicked)
	_, err = ex.Get(id)
	requirePanic(t, err, timebox.ErrConstructorPanicked)
	require.Empty(t, events(t, st, id))
	l.requirePanicLogged(t, 2)
}
