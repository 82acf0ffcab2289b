package conformance

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
)

var snapshotCases = []testCase{
	{"Missing", testSnapshotMissing},
	{"MissingWithEvents", testSnapshotMissingWithEvents},
	{"RoundTrip", testSnapshotRoundTrip},
	{"OlderIgnored", testSnapshotOlderIgnored},
	{"EqualReplaces", testSnapshotEqualReplaces},
	{"BeforeAnyEvent", testSnapshotBeforeEvents},
	{"BeyondHead", testSnapshotBeyondHead},
	{"BeyondHeadOfNewAggregate", testSnapshotBeyondHeadNew},
	{"Trim", testSnapshotTrim},
	{"TrimAll", testSnapshotTrimAll},
	{"NoTrim", testSnapshotNoTrim},
	{"Unmarshalable", testSnapshotUnmarshalable},
	{"TargetMismatch", testSnapshotTargetMismatch},
}

// snapState is the state snapshots store in these cases.
type snapState struct {
	Name  string   `json:"name"`
	Count int      `json:"count"`
	Tags  []string `json:"tags,omitempty"`
}

// getSnapshot loads id's snapshot into a snapState that starts as init.
func getSnapshot(
	t *testing.T, st *timebox.Store, id timebox.AggregateID, init snapState,
) (snapState, *timebox.SnapshotResult) {
	t.Helper()
	tgt := init
	res, err := st.GetSnapshot(id, &tgt)
	require.NoError(t, err)
	require.NotNil(t, res)
	require.NotNil(t, res.AdditionalEvents)
	return tgt, res
}

func dataSize(evs []*timebox.Event) int {
	n := 0
	for _, e := range evs {
		n += len(e.Data)
	}
	return n
}

func testSnapshotMissing(t *testing.T, s Suite) {
	st := s.store(t)
	init := snapState{Name: "untouched", Count: 7, Tags: []string{"x"}}
	got, res := getSnapshot(t, st, aid("none"), init)
	require.Equal(t, init, got)
	require.Empty(t, res.AdditionalEvents)
	require.EqualValues(t, 0, res.NextSequence)
	require.Zero(t, res.SnapshotSize)
	require.Zero(t, res.EventsSize)
}

func testSnapshotMissingWithEvents(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("order", "1")
	evs := items("a", 3)
	seed(t, st, id, evs...)
	init := snapState{Name: "untouched"}
	got, res := getSnapshot(t, st, id, init)
	require.Equal(t, init, got)
	require.EqualValues(t, 0, res.NextSequence)
	require.Zero(t, res.SnapshotSize)
	requireStored(t, id, 0, evs, res.AdditionalEvents)
	require.Equal(t, dataSize(evs), res.EventsSize)
}

func testSnapshotRoundTrip(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("order", "1")
	evs := []*timebox.Event{
		ev("a", `"one"`), ev("b", `{"two" : 2}`), ev("c", `[3,  "three"]`),
		ev("d", `"four"`),
	}
	seed(t, st, id, evs...)
	state := snapState{Name: "héllo ✓", Count: 2, Tags: []string{"a", "b"}}
	require.NoError(t, st.PutSnapshot(id, state, 2))

	got, res := getSnapshot(t, st, id, snapState{})
	require.Equal(t, state, got)
	require.EqualValues(t, 2, res.NextSequence)
	require.Equal(t, len(mustJSON(state)), res.SnapshotSize)
	requireStored(t, id, 2, evs[2:], res.AdditionalEvents)
	require.Equal(t, len(`[3,  "three"]`)+len(`"four"`), res.EventsSize)
	requireStored(t, id, 0, evs, events(t, st, id))
}

func testSnapshotOlderIgnored(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("order", "1")
	seed(t, st, id, items("a", 4)...)
	newer := snapState{Name: "newer", Count: 3}
	require.NoError(t, st.PutSnapshot(id, newer, 3))
	require.NoError(t, st.PutSnapshot(id, snapState{Name: "older", Count: 1}, 1))
	require.NoError(t, st.PutSnapshot(id, snapState{Name: "oldest"}, 0))
	got, res := getSnapshot(t, st, id, snapState{})
	require.Equal(t, newer, got)
	require.EqualValues(t, 3, res.NextSequence)
	require.Equal(t, len(mustJSON(newer)), res.SnapshotSize)
	require.Len(t, res.AdditionalEvents, 1)
}

func testSnapshotEqualReplaces(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("order", "1")
	seed(t, st, id, items("a", 3)...)
	require.NoError(t, st.PutSnapshot(id, snapState{Name: "first", Count: 2}, 2))
	second := map[string]any{"shape": "changed", "n": []int{1, 2}}
	require.NoError(t, st.PutSnapshot(id, second, 2))

	var got map[string]any
	res, err := st.GetSnapshot(id, &got)
	require.NoError(t, err)
	require.Equal(t, map[string]any{
		"shape": "changed", "n": []any{1.0, 2.0},
	}, got)
	require.EqualValues(t, 2, res.NextSequence)
	require.Equal(t, len(mustJSON(second)), res.SnapshotSize)
}

func testSnapshotBeforeEvents(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("order", "1")
	state := snapState{Name: "seeded"}
	require.NoError(t, st.PutSnapshot(id, state, 0))
	got, res := getSnapshot(t, st, id, snapState{})
	require.Equal(t, state, got)
	require.EqualValues(t, 0, res.NextSequence)
	require.Empty(t, res.AdditionalEvents)

	evs := items("a", 2)
	seed(t, st, id, evs...)
	got, res = getSnapshot(t, st, id, snapState{})
	require.Equal(t, state, got)
	requireStored(t, id, 0, evs, res.AdditionalEvents)
	require.Equal(t, dataSize(evs), res.EventsSize)
}

func testSnapshotBeyondHead(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("order", "1")
	seed(t, st, id, items("a", 2)...)
	state := snapState{Name: "imported", Count: 5}
	require.NoError(t, st.PutSnapshot(id, state, 5))

	got, res := getSnapshot(t, st, id, snapState{})
	require.Equal(t, state, got)
	require.EqualValues(t, 5, res.NextSequence)
	require.Empty(t, res.AdditionalEvents)
	require.Zero(t, res.EventsSize)

	vc := conflict(t, st.AppendEvents(id, 2, items("b", 1)))
	require.EqualValues(t, 5, vc.ActualSequence)
	require.NoError(t, st.AppendEvents(id, 5, nil))

	next := items("c", 2)
	require.NoError(t, st.AppendEvents(id, 5, next))
	tail, err := st.GetEvents(id, 5)
	require.NoError(t, err)
	requireStored(t, id, 5, next, tail)
	_, res = getSnapshot(t, st, id, snapState{})
	requireStored(t, id, 5, next, res.AdditionalEvents)
}

func testSnapshotBeyondHeadNew(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("imported")
	require.NoError(t, st.PutSnapshot(id, snapState{Name: "x"}, 3))
	vc := conflict(t, st.AppendEvents(id, 0, items("a", 1)))
	require.EqualValues(t, 0, vc.ExpectedSequence)
	require.EqualValues(t, 3, vc.ActualSequence)
	require.Empty(t, vc.NewEvents)

	evs := items("b", 1)
	require.NoError(t, st.AppendEvents(id, 3, evs))
	requireStored(t, id, 3, evs, events(t, st, id))
}

func testSnapshotTrim(t *testing.T, s Suite) {
	st := s.store(t, timebox.Config{TrimEvents: true})
	id := aid("order", "1")
	evs := items("a", 5)
	seed(t, st, id, evs...)
	state := snapState{Name: "at3", Count: 3}
	require.NoError(t, st.PutSnapshot(id, state, 3))

	requireStored(t, id, 3, evs[3:], events(t, st, id))
	got, res := getSnapshot(t, st, id, snapState{})
	require.Equal(t, state, got)
	require.EqualValues(t, 3, res.NextSequence)
	requireStored(t, id, 3, evs[3:], res.AdditionalEvents)
	require.Equal(t, dataSize(evs[3:]), res.EventsSize)

	vc := conflict(t, st.AppendEvents(id, 1, items("x", 1)))
	require.EqualValues(t, 5, vc.ActualSequence)
	more := items("b", 2)
	require.NoError(t, st.AppendEvents(id, 5, more))
	all := append(evs[3:], more...)
	requireStored(t, id, 3, all, events(t, st, id))
	_, res = getSnapshot(t, st, id, snapState{})
	requireStored(t, id, 3, all, res.AdditionalEvents)
}

func testSnapshotTrimAll(t *testing.T, s Suite) {
	st := s.store(t, timebox.Config{TrimEvents: true})
	id := aid("order", "1")
	seed(t, st, id, items("a", 3)...)
	state := snapState{Name: "all", Count: 3}
	require.NoError(t, st.PutSnapshot(id, state, 3))
	require.Empty(t, events(t, st, id))
	got, res := getSnapshot(t, st, id, snapState{})
	require.Equal(t, state, got)
	require.EqualValues(t, 3, res.NextSequence)
	require.Empty(t, res.AdditionalEvents)

	ids, err := st.ListAggregates(nil)
	require.NoError(t, err)
	require.Equal(t, []timebox.AggregateID{id}, ids)

	evs := items("b", 1)
	require.NoError(t, st.AppendEvents(id, 3, evs))
	requireStored(t, id, 3, evs, events(t, st, id))
}

func testSnapshotNoTrim(t *testing.T, s Suite) {
	st := s.store(t)
	require.False(t, st.Config().TrimEvents)
	id := aid("order", "1")
	evs := items("a", 5)
	seed(t, st, id, evs...)
	require.NoError(t, st.PutSnapshot(id, snapState{Count: 3}, 3))
	requireStored(t, id, 0, evs, events(t, st, id))
	_, res := getSnapshot(t, st, id, snapState{})
	requireStored(t, id, 3, evs[3:], res.AdditionalEvents)
}

func testSnapshotUnmarshalable(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("order", "1")
	seed(t, st, id, items("a", 2)...)
	for _, v := range []any{
		make(chan int), func() {}, math.NaN(), math.Inf(1),
		map[string]any{"f": func() {}},
		json.RawMessage(`{bad`),
	} {
		require.Error(t, st.PutSnapshot(id, v, 1), "%T", v)
	}
	_, res := getSnapshot(t, st, id, snapState{})
	require.EqualValues(t, 0, res.NextSequence)
	require.Zero(t, res.SnapshotSize)
	require.Len(t, res.AdditionalEvents, 2)
}

func testSnapshotTargetMismatch(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("order", "1")
	require.NoError(t, st.PutSnapshot(id, snapState{Name: "x"}, 0))
	var n int
	_, err := st.GetSnapshot(id, &n)
	require.Error(t, err)
}
