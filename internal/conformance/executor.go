package conformance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
)

var executorCases = []testCase{
	{"Exec", testExecBasic},
	{"ConflictRetryFoldsNewEvents", testExecConflictRetry},
	{"MaxRetriesOneMeansNoRetry", testExecMaxRetries(1)},
	{"MaxRetriesCountsAttempts", testExecMaxRetries(3)},
	{"RetrySucceedsWithinLimit", testExecRetryWithinLimit},
	{"CommandErrorAborts", testExecCommandError},
	{"NoOpCheckedAgainstHead", testExecNoOp},
	{"OnSuccessOrder", testExecOnSuccessOrder},
	{"OnSuccessPanicRecovered", testExecOnSuccessPanic},
	{"OnSuccessOfDiscardedAttempt", testExecOnSuccessDiscarded},
	{"CacheEviction", testExecCacheEviction},
	{"OpportunisticSnapshot", testExecOpportunisticSnapshot},
	{"SnapshotRatio", testExecSnapshotRatio},
	{"NoSnapshotWithoutEvents", testExecNoSnapshotWhenEmpty},
	{"SaveSnapshot", testExecSaveSnapshot},
	{"SaveSnapshotUnmarshalable", testExecSaveSnapshotBad},
	{"TrimmedRebuild", testExecTrimmed},
	{"Raise", testExecRaise},
	{"RaiseErrors", testExecRaiseErrors},
	{"AggregatorContext", testExecContext},
	{"CancelledContext", testExecCancelled},
	{"MakeApplierUndecodableSkipped", testExecUndecodable},
	{"Dispatcher", testExecDispatcher},
	{"GetEventValue", testGetEventValue},
	{"GetStoreAndAppliesEvent", testExecAccessors},
}

var errCommand = errors.New("command failed")

// tally is the state the executor cases build: the "item" payloads seen.
type tally struct {
	Items []string `json:"items"`
}

var tallyAppliers = timebox.Appliers[tally]{
	"item": timebox.MakeApplier(func(s tally, _ *timebox.Event, v string) tally {
		return tally{Items: slices.Concat(s.Items, []string{v})}
	}),
}

func newTally() tally { return tally{} }

func tallyExec(
	st *timebox.Store, actions ...timebox.SuccessAction[tally],
) *timebox.Executor[tally] {
	return timebox.NewExecutor(st, newTally, tallyAppliers, actions...)
}

// add is a command raising one "item" event per value.
func add(values ...string) timebox.Command[tally] {
	return func(_ tally, ag *timebox.Aggregator[tally]) error {
		for _, v := range values {
			if err := timebox.Raise(ag, "item", v); err != nil {
				return err
			}
		}
		return nil
	}
}

func noop(tally, *timebox.Aggregator[tally]) error { return nil }

// exec runs cmd and requires it to succeed with items as the state.
func exec(
	t *testing.T, ex *timebox.Executor[tally], id timebox.AggregateID,
	cmd timebox.Command[tally], items ...string,
) {
	t.Helper()
	got, err := ex.Exec(id, cmd)
	require.NoError(t, err)
	require.Equal(t, items, got.Items)
}

// logItems returns the payloads of id's stored events, as JSON text.
func logItems(t *testing.T, st *timebox.Store, id timebox.AggregateID) []string {
	t.Helper()
	res := []string{}
	for i, e := range events(t, st, id) {
		require.EqualValues(t, i, e.Sequence)
		res = append(res, string(e.Data))
	}
	return res
}

func quoted(values ...string) []string {
	res := make([]string, len(values))
	for i, v := range values {
		res[i] = string(quote(v))
	}
	return res
}

// snapshotTally returns id's stored snapshot state and sequence.
func snapshotTally(
	t *testing.T, st *timebox.Store, id timebox.AggregateID,
) (tally, *timebox.SnapshotResult) {
	t.Helper()
	var tgt tally
	res, err := st.GetSnapshot(id, &tgt)
	require.NoError(t, err)
	return tgt, res
}

func testExecBasic(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("tally", "1")
	ex := tallyExec(st)
	exec(t, ex, id, add("a", "b"), "a", "b")
	exec(t, ex, id, add("c"), "a", "b", "c")
	got := events(t, st, id)
	require.Len(t, got, 3)
	for i, e := range got {
		require.EqualValues(t, i, e.Sequence)
		require.Equal(t, timebox.EventType("item"), e.Type)
		require.Equal(t, id, e.AggregateID)
		require.False(t, e.Timestamp.IsZero())
	}
	require.Equal(t, quoted("a", "b", "c"), logItems(t, st, id))
	exec(t, tallyExec(st), id, noop, "a", "b", "c")
}

// racer is a command that appends "raced" events through the store itself
// on its first n runs, so each of those runs loses its append; it records
// the state each run saw.
type racer struct {
	t     *testing.T
	st    *timebox.Store
	n     int
	mu    sync.Mutex
	seen  [][]string
	added int
}

func (r *racer) cmd(s tally, ag *timebox.Aggregator[tally]) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, slices.Clone(s.Items))
	if len(r.seen) <= r.n {
		v := fmt.Sprintf("raced%d", r.added)
		err := r.st.AppendEvents(ag.ID(), ag.NextSequence(), []*timebox.Event{
			{Timestamp: at(r.added), Type: "item", Data: quote(v)},
		})
		if !assert.NoError(r.t, err) {
			return err
		}
		r.added++
	}
	return timebox.Raise(ag, "item", "mine")
}

func (r *racer) runs() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen
}

func testExecConflictRetry(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("tally", "1")
	ex := tallyExec(st)
	exec(t, ex, id, add("a"), "a")
	r := &racer{t: t, st: st, n: 1}
	exec(t, ex, id, r.cmd, "a", "raced0", "mine")
	require.Equal(t, [][]string{{"a"}, {"a", "raced0"}}, r.runs())
	require.Equal(t, quoted("a", "raced0", "mine"), logItems(t, st, id))
}

func testExecMaxRetries(attempts int) func(*testing.T, Suite) {
	return func(t *testing.T, s Suite) {
		st := s.store(t, timebox.Config{MaxRetries: attempts})
		require.Equal(t, attempts, st.Config().MaxRetries)
		id := aid("tally", "1")
		var calls int
		ex := tallyExec(st, func(tally, []*timebox.Event) { calls++ })
		r := &racer{t: t, st: st, n: 1000}
		_, err := ex.Exec(id, func(s tally, ag *timebox.Aggregator[tally]) error {
			ag.OnSuccess(func(tally, []*timebox.Event) { calls++ })
			return r.cmd(s, ag)
		})
		require.ErrorIs(t, err, timebox.ErrMaxRetriesExceeded)
		require.Len(t, r.runs(), attempts)
		require.Zero(t, calls)
		want := make([]string, attempts)
		for i := range want {
			want[i] = fmt.Sprintf("raced%d", i)
		}
		require.Equal(t, quoted(want...), logItems(t, st, id))
	}
}

func testExecRetryWithinLimit(t *testing.T, s Suite) {
	st := s.store(t, timebox.Config{MaxRetries: 3})
	id := aid("tally", "1")
	r := &racer{t: t, st: st, n: 2}
	exec(t, tallyExec(st), id, r.cmd, "raced0", "raced1", "mine")
	require.Equal(t, [][]string{nil, {"raced0"}, {"raced0", "raced1"}}, r.runs())
	require.Equal(t, quoted("raced0", "raced1", "mine"), logItems(t, st, id))
}

func testExecCommandError(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("tally", "1")
	var calls int
	ex := tallyExec(st, func(tally, []*timebox.Event) { calls++ })
	_, err := ex.Exec(id, func(s tally, ag *timebox.Aggregator[tally]) error {
		ag.OnSuccess(func(tally, []*timebox.Event) { calls++ })
		require.NoError(t, timebox.Raise(ag, "item", "aborted"))
		return fmt.Errorf("wrapped: %w", errCommand)
	})
	require.ErrorIs(t, err, errCommand)
	require.Zero(t, calls)
	require.Empty(t, events(t, st, id))
	require.Empty(t, listAggregates(t, st, nil))

	exec(t, ex, id, add("b"), "b")
	require.Equal(t, 1, calls)
	require.Equal(t, quoted("b"), logItems(t, st, id))
}

func testExecNoOp(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("tally", "1")
	var got [][]*timebox.Event
	ex := tallyExec(st, func(_ tally, evs []*timebox.Event) {
		got = append(got, evs)
	})
	exec(t, ex, id, add("a"), "a")
	require.NoError(t, st.AppendEvents(id, 1, []*timebox.Event{
		{Timestamp: at(0), Type: "item", Data: quote("outside")},
	}))

	var last []string
	exec(t, ex, id, func(s tally, _ *timebox.Aggregator[tally]) error {
		last = slices.Clone(s.Items)
		return nil
	}, "a", "outside")
	require.Equal(t, []string{"a", "outside"}, last)
	require.Len(t, got, 2)
	require.NotNil(t, got[1])
	require.Empty(t, got[1])
	require.Equal(t, quoted("a", "outside"), logItems(t, st, id))
}

// successLog records the success actions that ran, in order.
type successLog struct {
	mu    sync.Mutex
	names []string
	state [][]string
	evs   [][]*timebox.Event
}

func (l *successLog) action(name string) timebox.SuccessAction[tally] {
	return func(s tally, evs []*timebox.Event) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.names = append(l.names, name)
		l.state = append(l.state, s.Items)
		l.evs = append(l.evs, evs)
	}
}

func panicky(tally, []*timebox.Event) { panic("success action panicked") }

func testExecOnSuccessOrder(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("tally", "1")
	l := &successLog{}
	ex := tallyExec(st, l.action("e1"), l.action("e2"))
	exec(t, ex, id, func(s tally, ag *timebox.Aggregator[tally]) error {
		ag.OnSuccess(l.action("a1"))
		ag.OnSuccess(l.action("a2"))
		return add("x", "y")(s, ag)
	}, "x", "y")
	require.Equal(t, []string{"e1", "e2", "a1", "a2"}, l.names)
	stored := events(t, st, id)
	for i := range l.names {
		require.Equal(t, []string{"x", "y"}, l.state[i])
		requireStored(t, id, 0, stored, l.evs[i])
	}

	l.names, l.state, l.evs = nil, nil, nil
	exec(t, ex, id, add("z"), "x", "y", "z")
	require.Equal(t, []string{"e1", "e2"}, l.names)
	stored = events(t, st, id)
	requireStored(t, id, 2, stored[2:], l.evs[0])
}

func testExecOnSuccessPanic(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("tally", "1")
	l := &successLog{}
	ex := tallyExec(st, panicky, l.action("e2"), panicky, l.action("e4"))
	exec(t, ex, id, func(s tally, ag *timebox.Aggregator[tally]) error {
		ag.OnSuccess(panicky)
		ag.OnSuccess(l.action("a2"))
		return add("x")(s, ag)
	}, "x")
	require.Equal(t, []string{"e2", "e4", "a2"}, l.names)
	require.Equal(t, quoted("x"), logItems(t, st, id))
	exec(t, ex, id, add("y"), "x", "y")
}

func testExecOnSuccessDiscarded(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("tally", "1")
	l := &successLog{}
	r := &racer{t: t, st: st, n: 1}
	run := 0
	exec(t, tallyExec(st), id, func(s tally, ag *timebox.Aggregator[tally]) error {
		run++
		ag.OnSuccess(l.action(fmt.Sprintf("run%d", run)))
		return r.cmd(s, ag)
	}, "raced0", "mine")
	require.Equal(t, []string{"run2"}, l.names)
}

func testExecCacheEviction(t *testing.T, s Suite) {
	st := s.store(t, timebox.Config{CacheSize: 1})
	a, b := aid("tally", "a"), aid("tally", "b")
	ex := tallyExec(st)
	exec(t, ex, a, add("a1"), "a1")
	exec(t, ex, b, add("b1"), "b1")
	require.NoError(t, st.AppendEvents(a, 1, []*timebox.Event{
		{Timestamp: at(0), Type: "item", Data: quote("outside")},
	}))
	exec(t, ex, a, add("a2"), "a1", "outside", "a2")
	exec(t, ex, b, add("b2"), "b1", "b2")
	exec(t, ex, a, noop, "a1", "outside", "a2")
	exec(t, ex, b, noop, "b1", "b2")
	require.Equal(t, quoted("a1", "outside", "a2"), logItems(t, st, a))
	require.Equal(t, quoted("b1", "b2"), logItems(t, st, b))
}

func testExecOpportunisticSnapshot(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("tally", "1")
	seed(t, st, id, items("a", 3)...)
	exec(t, tallyExec(st), id, add("x"), "a0", "a1", "a2", "x")
	snap, res := snapshotTally(t, st, id)
	require.EqualValues(t, 3, res.NextSequence)
	require.Equal(t, []string{"a0", "a1", "a2"}, snap.Items)
	requireStored(t, id, 3, []*timebox.Event{
		{Type: "item", Data: quote("x"), Timestamp: res.AdditionalEvents[0].Timestamp},
	}, res.AdditionalEvents)
	exec(t, tallyExec(st), id, noop, "a0", "a1", "a2", "x")
}

func testExecSnapshotRatio(t *testing.T, s Suite) {
	state := tally{Items: []string{"a0", "a1", "a2"}}
	setup := func(ratio float64) (*timebox.Store, timebox.AggregateID) {
		st := s.store(t, timebox.Config{SnapshotRatio: ratio})
		id := aid("tally", "1")
		seed(t, st, id, items("a", 3)...)
		require.NoError(t, st.PutSnapshot(id, state, 3))
		require.NoError(t, st.AppendEvents(id, 3, items("b", 1)))
		return st, id
	}
	// The trailing event is 4 bytes against a 26-byte snapshot.
	require.Len(t, mustJSON(state), 26)

	st, id := setup(1)
	exec(t, tallyExec(st), id, noop, "a0", "a1", "a2", "b0")
	_, res := snapshotTally(t, st, id)
	require.EqualValues(t, 3, res.NextSequence)

	st, id = setup(0.1)
	exec(t, tallyExec(st), id, noop, "a0", "a1", "a2", "b0")
	snap, res := snapshotTally(t, st, id)
	require.EqualValues(t, 4, res.NextSequence)
	require.Equal(t, []string{"a0", "a1", "a2", "b0"}, snap.Items)
}

func testExecNoSnapshotWhenEmpty(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("tally", "1")
	exec(t, tallyExec(st), id, noop)
	_, res := snapshotTally(t, st, id)
	require.Zero(t, res.SnapshotSize)
	require.Empty(t, listAggregates(t, st, nil))
}

func testExecSaveSnapshot(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("tally", "1")
	ex := tallyExec(st)
	exec(t, ex, id, add("a", "b", "c"), "a", "b", "c")
	require.NoError(t, ex.SaveSnapshot(id))
	snap, res := snapshotTally(t, st, id)
	require.EqualValues(t, 3, res.NextSequence)
	require.Equal(t, []string{"a", "b", "c"}, snap.Items)
	require.Equal(t, len(mustJSON(snap)), res.SnapshotSize)

	exec(t, ex, id, add("d"), "a", "b", "c", "d")
	exec(t, tallyExec(st), id, noop, "a", "b", "c", "d")
}

func testExecTrimmed(t *testing.T, s Suite) {
	st := s.store(t, timebox.Config{TrimEvents: true})
	id := aid("tally", "1")
	ex := tallyExec(st)
	exec(t, ex, id, add("a", "b", "c"), "a", "b", "c")
	require.NoError(t, ex.SaveSnapshot(id))
	require.Empty(t, events(t, st, id))

	exec(t, tallyExec(st), id, add("d"), "a", "b", "c", "d")
	got := events(t, st, id)
	require.Len(t, got, 1)
	require.EqualValues(t, 3, got[0].Sequence)
	exec(t, ex, id, add("e"), "a", "b", "c", "d", "e")
	exec(t, tallyExec(st), id, noop, "a", "b", "c", "d", "e")
}

// unmarshalable is a state json.Marshal rejects.
type unmarshalable struct {
	C chan int
	N int
}

func testExecSaveSnapshotBad(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("bad", "1")
	ex := timebox.NewExecutor(st,
		func() unmarshalable { return unmarshalable{} },
		timebox.Appliers[unmarshalable]{
			"n": func(s unmarshalable, _ *timebox.Event) unmarshalable {
				s.N++
				return s
			},
		})
	got, err := ex.Exec(id, func(_ unmarshalable, ag *timebox.Aggregator[unmarshalable]) error {
		return timebox.Raise(ag, "n", 1)
	})
	require.NoError(t, err)
	require.Equal(t, 1, got.N)
	require.Error(t, ex.SaveSnapshot(id))
	_, res := snapshotTally(t, st, id)
	require.EqualValues(t, 0, res.NextSequence)
	require.Zero(t, res.SnapshotSize)
}

func testExecRaise(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("tally", "1")
	seed(t, st, id, items("a", 2)...)
	exec(t, tallyExec(st), id, func(s tally, ag *timebox.Aggregator[tally]) error {
		require.Equal(t, id, ag.ID())
		require.EqualValues(t, 2, ag.NextSequence())
		require.Equal(t, []string{"a0", "a1"}, s.Items)
		require.Equal(t, s.Items, ag.Value().Items)
		require.NoError(t, timebox.Raise(ag, "item", "b"))
		require.Equal(t, []string{"a0", "a1", "b"}, ag.Value().Items)
		require.EqualValues(t, 3, ag.NextSequence())
		require.NoError(t, timebox.Raise(ag, "other", map[string]int{"n": 1}))
		require.NoError(t, timebox.Raise(ag, "item", "c"))
		require.Equal(t, []string{"a0", "a1", "b", "c"}, ag.Value().Items)
		return nil
	}, "a0", "a1", "b", "c")
	got := events(t, st, id)
	require.Len(t, got, 5)
	require.Equal(t, `{"n":1}`, string(got[3].Data))
	require.Equal(t, timebox.EventType("other"), got[3].Type)
	require.Equal(t, quoted("a0", "a1", "b"), logItems(t, st, id)[:3])
	require.Equal(t, string(quote("c")), string(got[4].Data))
}

func testExecRaiseErrors(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("tally", "1")
	ex := tallyExec(st)
	for _, cmd := range []timebox.Command[tally]{
		func(_ tally, ag *timebox.Aggregator[tally]) error {
			require.NoError(t, timebox.Raise(ag, "item", "ok"))
			return timebox.Raise(ag, "item", make(chan int))
		},
		func(_ tally, ag *timebox.Aggregator[tally]) error {
			require.NoError(t, timebox.Raise(ag, "item", "ok"))
			return timebox.Raise(ag, "", "empty type")
		},
	} {
		_, err := ex.Exec(id, cmd)
		require.Error(t, err)
	}
	require.Empty(t, events(t, st, id))
	exec(t, ex, id, noop)
}

type ctxKey struct{}

func testExecContext(t *testing.T, s Suite) {
	st := s.store(t)
	ctx := context.WithValue(context.Background(), ctxKey{}, "value")
	got, err := tallyExec(st).ExecContext(ctx, aid("tally", "1"),
		func(_ tally, ag *timebox.Aggregator[tally]) error {
			require.Equal(t, "value", ag.Context().Value(ctxKey{}))
			return timebox.Raise(ag, "item", "x")
		})
	require.NoError(t, err)
	require.Equal(t, []string{"x"}, got.Items)
}

func testExecCancelled(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("tally", "1")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := tallyExec(st).ExecContext(ctx, id, add("x"))
	require.ErrorIs(t, err, context.Canceled)
	require.Empty(t, events(t, st, id))
}

func testExecUndecodable(t *testing.T, s Suite) {
	st := s.store(t, timebox.Config{SkipUndecodable: true})
	id := aid("tally", "1")
	seed(t, st, id,
		ev("item", `"a"`), ev("item", `{"not":"a string"}`), ev("item", `17`),
		ev("unknown", `"u"`), ev("item", `"b"`),
	)
	exec(t, tallyExec(st), id, noop, "a", "b")
	exec(t, tallyExec(st), id, add("c"), "a", "b", "c")
}

func testExecDispatcher(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("tally", "1")
	seed(t, st, id,
		ev("item", `"a"`), ev("other", `{}`), ev("item", `{"bad":1}`),
		ev("fail", `null`),
	)
	var got []string
	h := timebox.MakeDispatcher(map[timebox.EventType]timebox.Handler{
		"item": timebox.MakeHandler(func(e *timebox.Event, v string) error {
			got = append(got, fmt.Sprintf("%d:%s", e.Sequence, v))
			return nil
		}),
		"fail": func(*timebox.Event) error { return errCommand },
	})
	evs := events(t, st, id)
	require.NoError(t, h(evs[0]))
	require.NoError(t, h(evs[1]))
	require.Error(t, h(evs[2]))
	require.ErrorIs(t, h(evs[3]), errCommand)
	require.Equal(t, []string{"0:a"}, got)
}

func testGetEventValue(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("tally", "1")
	seed(t, st, id, ev("x", `{"n": 1, "s": "é"}`))
	e := events(t, st, id)[0]

	type payload struct {
		N int    `json:"n"`
		S string `json:"s"`
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			v, err := timebox.GetEventValue[payload](e)
			assert.NoError(t, err)
			assert.Equal(t, payload{N: 1, S: "é"}, v)
		})
	}
	wg.Wait()
	_, err := timebox.GetEventValue[int](e)
	require.Error(t, err)
	m, err := timebox.GetEventValue[map[string]any](e)
	require.NoError(t, err)
	require.Equal(t, map[string]any{"n": 1.0, "s": "é"}, m)
	require.Equal(t, `{"n": 1, "s": "é"}`, string(e.Data))
}

func testExecAccessors(t *testing.T, s Suite) {
	st := s.store(t)
	ex := tallyExec(st)
	require.Same(t, st, ex.GetStore())
	require.True(t, ex.AppliesEvent(ev("item", `"a"`)))
	require.False(t, ex.AppliesEvent(ev("other", `"a"`)))
}
