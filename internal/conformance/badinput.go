package conformance

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
)

var badInputCases = []testCase{
	{"InvalidAggregateIDs", testBadIDs},
	{"InvalidPrefix", testBadPrefix},
	{"EmptyEventType", testBadEventType},
	{"InvalidJSONData", testBadEventData},
	{"NilEvent", testBadNilEvent},
	{"NegativeSequence", testBadSequence},
	{"UnmarshalableSnapshot", testBadSnapshotValue},
}

// badIDs are aggregate IDs every call must reject.
var badIDs = []timebox.AggregateID{
	nil, {}, {""}, {"a", ""}, {"", "a"}, {"a", "", "b"},
}

// idCalls returns every call taking an aggregate ID, by name.
func idCalls(st *timebox.Store, archiving bool) map[string]func(timebox.AggregateID) error {
	ex := tallyExec(st)
	calls := map[string]func(timebox.AggregateID) error{
		"AppendEvents": func(id timebox.AggregateID) error {
			return st.AppendEvents(id, 0, items("a", 1))
		},
		"AppendEventsEmpty": func(id timebox.AggregateID) error {
			return st.AppendEvents(id, 0, nil)
		},
		"GetEvents": func(id timebox.AggregateID) error {
			_, err := st.GetEvents(id, 0)
			return err
		},
		"GetSnapshot": func(id timebox.AggregateID) error {
			var v any
			_, err := st.GetSnapshot(id, &v)
			return err
		},
		"PutSnapshot": func(id timebox.AggregateID) error {
			return st.PutSnapshot(id, 1, 0)
		},
		"GetAggregateStatus": func(id timebox.AggregateID) error {
			_, err := st.GetAggregateStatus(id)
			return err
		},
		"Exec": func(id timebox.AggregateID) error {
			_, err := ex.Exec(id, add("x"))
			return err
		},
		"SaveSnapshot": func(id timebox.AggregateID) error {
			return ex.SaveSnapshot(id)
		},
	}
	if archiving {
		calls["Archive"] = st.Archive
	}
	return calls
}

// requireUntouched checks that st holds no aggregate and no index entry.
func requireUntouched(t *testing.T, st *timebox.Store) {
	t.Helper()
	require.Empty(t, listAggregates(t, st, nil))
	require.Empty(t, byStatus(t, st, "open"))
	require.Empty(t, labelValues(t, st, "region"))
}

func testBadIDs(t *testing.T, s Suite) {
	st := s.store(t)
	for name, call := range idCalls(st, s.Archiving) {
		for _, id := range badIDs {
			require.ErrorIs(t, call(id), timebox.ErrInvalidAggregateID,
				"%s(%#v)", name, id)
		}
	}
	requireUntouched(t, st)
}

func testBadPrefix(t *testing.T, s Suite) {
	st := s.store(t)
	seed(t, st, aid("a", "b"), items("a", 1)...)
	for _, p := range []timebox.AggregateID{{""}, {"a", ""}, {"", "b"}} {
		_, err := st.ListAggregates(p)
		require.ErrorIs(t, err, timebox.ErrInvalidAggregateID, "%#v", p)
	}
}

// bulkIndexed returns a store whose indexer sets status "open" and label
// region=eu for every batch.
func (s Suite) bulkIndexed(t *testing.T) (*timebox.Store, *int) {
	calls := new(int)
	st := s.store(t, timebox.Config{
		Indexer: func([]*timebox.Event) []*timebox.Index {
			*calls++
			return []*timebox.Index{{
				Status: strp("open"),
				Labels: map[string]string{"region": "eu"},
			}}
		},
	})
	return st, calls
}

// requireRejected appends each batch to a new and to an existing aggregate
// and checks that it fails with ErrInvalidEvent, writing nothing.
func requireRejected(t *testing.T, s Suite, batches [][]*timebox.Event) {
	t.Helper()
	st, calls := s.bulkIndexed(t)
	id, existing := aid("new"), aid("existing")
	for i, batch := range batches {
		require.ErrorIs(t, st.AppendEvents(id, 0, batch),
			timebox.ErrInvalidEvent, "batch %d", i)
	}
	require.Zero(t, *calls)
	requireUntouched(t, st)
	require.Empty(t, events(t, st, id))

	seed(t, st, existing, items("a", 1)...)
	for i, batch := range batches {
		require.ErrorIs(t, st.AppendEvents(existing, 1, batch),
			timebox.ErrInvalidEvent, "batch %d", i)
		require.ErrorIs(t, st.AppendEvents(existing, 5, batch),
			timebox.ErrInvalidEvent, "batch %d", i)
	}
	require.Equal(t, 1, *calls)
	requireStored(t, existing, 0, items("a", 1), events(t, st, existing))
	require.Equal(t, []timebox.AggregateID{existing}, listAggregates(t, st, nil))
}

func testBadEventType(t *testing.T, s Suite) {
	requireRejected(t, s, [][]*timebox.Event{
		{ev("", `"x"`)},
		{ev("ok", `"x"`), ev("", `"x"`)},
		{ev("ok", `"x"`), ev("ok", `"y"`), {Data: json.RawMessage(`1`)}},
	})
}

func testBadEventData(t *testing.T, s Suite) {
	var batches [][]*timebox.Event
	for _, d := range []string{
		"", `{"a":`, `{'a':1}`, `undefined`, `{"a":1}}`, `[1,]`, `"unterminated`,
		`{"a":1} {"b":2}`, `NaN`,
	} {
		batches = append(batches, []*timebox.Event{ev("ok", `1`), ev("bad", d)})
	}
	batches = append(batches, []*timebox.Event{{Type: "nil-data"}})
	requireRejected(t, s, batches)
}

func testBadNilEvent(t *testing.T, s Suite) {
	requireRejected(t, s, [][]*timebox.Event{
		{nil},
		{ev("ok", `1`), nil},
		{nil, ev("ok", `1`)},
	})
}

func testBadSequence(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("order", "1")
	require.ErrorIs(t, st.AppendEvents(id, -1, items("a", 1)),
		timebox.ErrInvalidSequence)
	require.ErrorIs(t, st.AppendEvents(id, -1, nil), timebox.ErrInvalidSequence)
	require.ErrorIs(t, st.PutSnapshot(id, 1, -1), timebox.ErrInvalidSequence)
	requireUntouched(t, st)

	seed(t, st, id, items("a", 2)...)
	require.ErrorIs(t, st.AppendEvents(id, -2, items("b", 1)),
		timebox.ErrInvalidSequence)
	require.ErrorIs(t, st.PutSnapshot(id, 1, -5), timebox.ErrInvalidSequence)
	require.Len(t, events(t, st, id), 2)
	_, res := getSnapshot(t, st, id, snapState{})
	require.Zero(t, res.SnapshotSize)
}

func testBadSnapshotValue(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("order", "1")
	require.Error(t, st.PutSnapshot(id, make(chan int), 0))
	require.Error(t, st.PutSnapshot(id, unmarshalable{}, 0))
	requireUntouched(t, st)
}
