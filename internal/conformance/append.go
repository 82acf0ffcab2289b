package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
)

var appendCases = []testCase{
	{"FirstBatchAtZero", testAppendFirstBatch},
	{"Sequential", testAppendSequential},
	{"AggregatesIndependent", testAppendIndependent},
	{"StaleConflict", testAppendStaleConflict},
	{"AheadConflict", testAppendAheadConflict},
	{"NewAggregateConflict", testAppendNewAggregateConflict},
	{"EmptyBatchAtHead", testAppendEmptyAtHead},
	{"EmptyBatchElsewhere", testAppendEmptyElsewhere},
	{"CallerEventsUntouched", testAppendCallerUntouched},
	{"DataByteForByte", testAppendDataBytes},
	{"TimestampRoundTrip", testAppendTimestamps},
	{"DecodedEqualsFresh", testAppendDeepEqual},
	{"TypeRoundTrip", testAppendTypes},
	{"LargeBatch", testAppendLargeBatch},
	{"LargeEvent", testAppendLargeEvent},
}

var loadCases = []testCase{
	{"FromSequence", testLoadFrom},
	{"AtAndPastHead", testLoadPastHead},
	{"UnknownAggregate", testLoadUnknown},
	{"ResultsAreCopies", testLoadCopies},
	{"LongLog", testLoadLong},
}

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

func testAppendFirstBatch(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("order", "1")
	evs := items("a", 3)
	seed(t, st, id, evs...)
	requireStored(t, id, 0, evs, events(t, st, id))
}

func testAppendSequential(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("order", "1")
	first, second, third := items("a", 2), items("b", 3), items("c", 1)
	seed(t, st, id, first...)
	require.NoError(t, st.AppendEvents(id, 2, second))
	require.NoError(t, st.AppendEvents(id, 5, third))
	requireStored(t, id, 0, slices.Concat(first, second, third), events(t, st, id))
}

func testAppendIndependent(t *testing.T, s Suite) {
	st := s.store(t)
	a, b := aid("a"), aid("b")
	ea, eb := items("a", 2), items("b", 3)
	seed(t, st, a, ea...)
	seed(t, st, b, eb...)
	require.NoError(t, st.AppendEvents(a, 2, items("x", 1)))
	requireStored(t, b, 0, eb, events(t, st, b))
	requireStored(t, a, 0, append(ea, items("x", 1)...), events(t, st, a))
}

func testAppendStaleConflict(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("order", "1")
	evs := items("a", 3)
	seed(t, st, id, evs...)

	err := st.AppendEvents(id, 1, items("b", 2))
	vc := conflict(t, err)
	require.EqualValues(t, 1, vc.ExpectedSequence)
	require.EqualValues(t, 3, vc.ActualSequence)
	requireStored(t, id, 1, evs[1:], vc.NewEvents)
	require.Equal(t,
		"version conflict: expected sequence 1, but at 3 (2 new events)",
		vc.Error())

	vc = conflict(t, st.AppendEvents(id, 0, items("b", 1)))
	require.EqualValues(t, 0, vc.ExpectedSequence)
	require.EqualValues(t, 3, vc.ActualSequence)
	requireStored(t, id, 0, evs, vc.NewEvents)
	require.Equal(t,
		"version conflict: expected sequence 0, but at 3 (3 new events)",
		vc.Error())

	requireStored(t, id, 0, evs, events(t, st, id))
}

func testAppendAheadConflict(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("order", "1")
	evs := items("a", 2)
	seed(t, st, id, evs...)

	vc := conflict(t, st.AppendEvents(id, 5, items("b", 1)))
	require.EqualValues(t, 5, vc.ExpectedSequence)
	require.EqualValues(t, 2, vc.ActualSequence)
	require.Empty(t, vc.NewEvents)
	require.Equal(t,
		"version conflict: expected sequence 5, but at 2 (0 new events)",
		vc.Error())
	requireStored(t, id, 0, evs, events(t, st, id))
}

func testAppendNewAggregateConflict(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("order", "1")
	vc := conflict(t, st.AppendEvents(id, 1, items("a", 1)))
	require.EqualValues(t, 1, vc.ExpectedSequence)
	require.EqualValues(t, 0, vc.ActualSequence)
	require.Empty(t, vc.NewEvents)
	require.Empty(t, events(t, st, id))
	ids, err := st.ListAggregates(nil)
	require.NoError(t, err)
	require.Empty(t, ids)
}

func testAppendEmptyAtHead(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("order", "1")
	require.NoError(t, st.AppendEvents(id, 0, nil))
	require.NoError(t, st.AppendEvents(id, 0, []*timebox.Event{}))
	evs := items("a", 2)
	seed(t, st, id, evs...)
	require.NoError(t, st.AppendEvents(id, 2, nil))
	require.NoError(t, st.AppendEvents(id, 2, []*timebox.Event{}))
	requireStored(t, id, 0, evs, events(t, st, id))
}

func testAppendEmptyElsewhere(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("order", "1")
	vc := conflict(t, st.AppendEvents(id, 1, nil))
	require.EqualValues(t, 1, vc.ExpectedSequence)
	require.EqualValues(t, 0, vc.ActualSequence)
	require.Empty(t, vc.NewEvents)

	evs := items("a", 3)
	seed(t, st, id, evs...)
	vc = conflict(t, st.AppendEvents(id, 1, nil))
	require.EqualValues(t, 1, vc.ExpectedSequence)
	require.EqualValues(t, 3, vc.ActualSequence)
	requireStored(t, id, 1, evs[1:], vc.NewEvents)

	vc = conflict(t, st.AppendEvents(id, 4, []*timebox.Event{}))
	require.EqualValues(t, 4, vc.ExpectedSequence)
	require.EqualValues(t, 3, vc.ActualSequence)
	require.Empty(t, vc.NewEvents)
	requireStored(t, id, 0, evs, events(t, st, id))
}

func testAppendCallerUntouched(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("order", "1")
	other := aid("other")
	mono := time.Now() // carries a monotonic reading
	evs := []*timebox.Event{
		{Timestamp: mono, Sequence: 42, Type: "a", AggregateID: other,
			Data: json.RawMessage(`{"n":1}`)},
		{Timestamp: baseTime, Sequence: -7, Type: "b",
			Data: json.RawMessage(`[1, 2]`)},
	}
	before := make([]timebox.Event, len(evs))
	for i, e := range evs {
		before[i] = timebox.Event{
			Timestamp: e.Timestamp, Sequence: e.Sequence, Type: e.Type,
			AggregateID: slices.Clone(e.AggregateID),
			Data:        slices.Clone(e.Data),
		}
	}
	passed := slices.Clone(id)
	seed(t, st, passed, evs...)
	passed[0] = "changed" // the caller's ID slice is not kept either

	for i, e := range evs {
		b := before[i]
		require.Equal(t, b.Sequence, e.Sequence, "event %d", i)
		require.Equal(t, b.Type, e.Type, "event %d", i)
		require.Equal(t, b.AggregateID, e.AggregateID, "event %d", i)
		require.Equal(t, string(b.Data), string(e.Data), "event %d", i)
		require.True(t, b.Timestamp == e.Timestamp,
			"event %d timestamp changed: %v -> %v", i, b.Timestamp, e.Timestamp)
	}

	// Changing the caller's bytes afterwards must not change history.
	evs[0].Data[1] = 'X'
	evs[0].AggregateID[0] = "changed"
	got := events(t, st, id)
	require.Equal(t, `{"n":1}`, string(got[0].Data))
	require.True(t, id.Equal(got[0].AggregateID))
	require.True(t, mono.Equal(got[0].Timestamp))
	require.EqualValues(t, 0, got[0].Sequence)
	require.EqualValues(t, 1, got[1].Sequence)
}

// oddData are valid JSON documents a backend must hand back byte for byte:
// whitespace, key order, duplicate keys, escapes, unicode, HTML characters
// and numbers that do not survive a float round trip.
var oddData = []string{
	`{"b" :  1 ,"a":[ 1,2 ]}`,
	"{\n\t\"k\": \"v\"\r\n}",
	"  {}  ",
	`{"z":1,"a":2,"m":3}`,
	`{"a":1,"a":2}`,
	`"h\u00e9llo \ud83d\ude00 \n \"q\" \\"`,
	`"héllo ✓ 日本語 😀"`,
	`"<a href=\"x\">&amp;</a>"`,
	`12345678901234567890123`,
	`1.0e+10`,
	`-0.000`,
	`null`,
	`true`,
	`[]`,
	`""`,
	`[{"nested":{"deep":[null,false,"\u0000"]}}]`,
}

func testAppendDataBytes(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("data")
	evs := make([]*timebox.Event, len(oddData))
	for i, d := range oddData {
		evs[i] = ev(fmt.Sprintf("odd.%d", i), d)
	}
	seed(t, st, id, evs...)
	requireStored(t, id, 0, evs, events(t, st, id))

	vc := conflict(t, st.AppendEvents(id, 0, items("x", 1)))
	requireStored(t, id, 0, evs, vc.NewEvents)

	var tgt any
	res, err := st.GetSnapshot(id, &tgt)
	require.NoError(t, err)
	requireStored(t, id, 0, evs, res.AdditionalEvents)
}

// oddTimes are timestamps that must come back to the nanosecond.
var oddTimes = []time.Time{
	{},
	time.Unix(0, 0),
	time.Date(1969, 7, 20, 20, 17, 40, 123456789, time.UTC),
	baseTime,
	time.Date(2100, 12, 31, 23, 59, 59, 999999999,
		time.FixedZone("W", -(9*3600+30*60))),
	time.Now(),
}

func testAppendTimestamps(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("times")
	evs := make([]*timebox.Event, len(oddTimes))
	for i, ts := range oddTimes {
		evs[i] = &timebox.Event{Timestamp: ts, Type: "t", Data: quote("x")}
	}
	seed(t, st, id, evs...)
	got := events(t, st, id)
	require.Len(t, got, len(oddTimes))
	for i, ts := range oddTimes {
		g := got[i].Timestamp
		require.Same(t, time.UTC, g.Location(), "event %d", i)
		require.Equal(t, ts.Unix(), g.Unix(), "event %d seconds", i)
		require.Equal(t, ts.Nanosecond(), g.Nanosecond(), "event %d nanos", i)
		require.True(t, ts.Round(0).UTC() == g,
			"event %d: want %#v, got %#v", i, ts.Round(0).UTC(), g)
	}
}

func testAppendDeepEqual(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("deep", "equal")
	data := `{"x": [1, 2.50, "é"]}`
	seed(t, st, id, &timebox.Event{
		Timestamp: time.Now(), Type: "first", Data: json.RawMessage(`{}`),
	}, &timebox.Event{
		Timestamp: baseTime, Type: "second", Data: json.RawMessage(data),
		ID: "evt-2", Metadata: timebox.Metadata{"actor": "ü", "": ""},
	})
	want := &timebox.Event{
		Timestamp:   time.Date(2026, 3, 14, 9, 39, 26, 535897932, time.UTC),
		Sequence:    1,
		Type:        "second",
		AggregateID: timebox.NewAggregateID("deep", "equal"),
		Data:        json.RawMessage(data),
		ID:          "evt-2",
		Metadata:    timebox.Metadata{"actor": "ü", "": ""},
	}
	got, err := st.GetEvents(id, 1)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.True(t, reflect.DeepEqual(want, got[0]),
		"want %#v\ngot  %#v", want, got[0])
}

// oddTypes are event types a backend must hand back exactly.
var oddTypes = []string{
	"order:created", "ünï©ode ✓", "{x}", "a b", "a\tb", `"q"`, "\\", "%3A",
	"*", strings.Repeat("long", 64),
}

func testAppendTypes(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("types")
	evs := make([]*timebox.Event, len(oddTypes))
	for i, typ := range oddTypes {
		evs[i] = ev(typ, fmt.Sprint(i))
	}
	seed(t, st, id, evs...)
	requireStored(t, id, 0, evs, events(t, st, id))
}

func testAppendLargeBatch(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("large", "batch")
	first, second := items("a", 1000), items("b", 10)
	seed(t, st, id, first...)
	require.NoError(t, st.AppendEvents(id, 1000, second))
	all := slices.Concat(first, second)
	requireStored(t, id, 0, all, events(t, st, id))

	vc := conflict(t, st.AppendEvents(id, 0, items("c", 1)))
	require.EqualValues(t, 1010, vc.ActualSequence)
	requireStored(t, id, 0, all, vc.NewEvents)
}

func testAppendLargeEvent(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("large", "event")
	big := ev("big", string(quote(strings.Repeat("0123456789abcdef", 32*1024))))
	seed(t, st, id, big, ev("small", "1"))
	requireStored(t, id, 0, []*timebox.Event{big, ev("small", "1")},
		events(t, st, id))
}

func testLoadFrom(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("order", "1")
	evs := items("a", 5)
	seed(t, st, id, evs...)
	for from := range 5 {
		got, err := st.GetEvents(id, int64(from))
		require.NoError(t, err)
		requireStored(t, id, int64(from), evs[from:], got)
	}
}

func testLoadPastHead(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("order", "1")
	seed(t, st, id, items("a", 3)...)
	for _, from := range []int64{3, 4, 1000} {
		got, err := st.GetEvents(id, from)
		require.NoError(t, err)
		require.NotNil(t, got, "from %d", from)
		require.Empty(t, got, "from %d", from)
	}
}

func testLoadUnknown(t *testing.T, s Suite) {
	st := s.store(t)
	seed(t, st, aid("order", "1"), items("a", 1)...)
	for _, id := range []timebox.AggregateID{
		aid("order"), aid("order", "2"), aid("order", "1", "x"), aid("order:1"),
	} {
		got, err := st.GetEvents(id, 0)
		require.NoError(t, err)
		require.NotNil(t, got, "%q", id)
		require.Empty(t, got, "%q", id)
	}
}

func testLoadCopies(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("order", "1")
	evs := items("a", 2)
	seed(t, st, id, evs...)

	got := events(t, st, id)
	got[0].Data[1] = 'X'
	got[0].Type = "changed"
	got[0].AggregateID[0] = "changed"
	got[1].Sequence = 99
	got[1] = nil
	requireStored(t, id, 0, evs, events(t, st, id))

	var tgt any
	res, err := st.GetSnapshot(id, &tgt)
	require.NoError(t, err)
	res.AdditionalEvents[0].Data[1] = 'Y'
	requireStored(t, id, 0, evs, events(t, st, id))
}

func testLoadLong(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("long")
	const batches, size = 6, 50
	var all []*timebox.Event
	for b := range batches {
		batch := items(fmt.Sprintf("b%d-", b), size)
		require.NoError(t, st.AppendEvents(id, int64(b*size), batch))
		all = append(all, batch...)
	}
	requireStored(t, id, 0, all, events(t, st, id))
	got, err := st.GetEvents(id, 137)
	require.NoError(t, err)
	requireStored(t, id, 137, all[137:], got)
}
