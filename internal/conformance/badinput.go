package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

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
	{"LongUnicodeParts", testBadLongParts},
	{"HugePayload", testBadHugePayload},
	{"HugeBatch", testBadHugeBatch},
	{"HugeSequences", testBadHugeSequences},
	{"DoneContext", testBadDoneContext},
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

// longAlphabet holds the characters key encodings treat specially, and
// unicode of every width.
var longAlphabet = []rune(
	":{}\\\x00/|%*?'\" \n\t.-_abcXYZ019üñï©ß日本語✓€😀\U0010FFFF",
)

// longPart returns a part of n runes from longAlphabet, in an order that
// depends on seed and does not repeat in short cycles, so it does not
// compress well.
func longPart(seed uint32, n int) string {
	var b strings.Builder
	x := seed*2654435761 + 1
	for range n {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b.WriteRune(longAlphabet[x%uint32(len(longAlphabet))])
	}
	return b.String()
}

// testBadLongParts stores aggregates whose IDs have parts of a thousand
// runes of unicode and special characters. A backend may refuse an ID it
// cannot hold, with an error and nothing written; one it accepts must come
// back exactly, in events, snapshots, the index and listings.
func testBadLongParts(t *testing.T, s Suite) {
	st, _ := s.indexedStore(t)
	p1, p2 := longPart(1, 1000), longPart(2, 1000)
	ids := []timebox.AggregateID{
		aid(p1), aid(p1 + "x"), aid(p1, p2), aid("long", p2), aid(p2[:len(p2)/2]),
	}
	var stored []timebox.AggregateID
	for i, id := range ids {
		n := fmt.Sprint(i)
		err := st.AppendEvents(id, 0, []*timebox.Event{idx(i, indexSpec{
			Status: strp("long" + n), Labels: map[string]string{"long": n},
		})})
		if err != nil {
			t.Logf("%d-byte ID refused: %v", len(id.String()), err)
			require.Empty(t, events(t, st, id), "refused ID %d", i)
			continue
		}
		stored = append(stored, id)
		if err := st.PutSnapshot(id, snapState{Name: n}, 1); err != nil {
			t.Logf("%d-byte ID's snapshot refused: %v", len(id.String()), err)
		} else {
			snap, res := getSnapshot(t, st, id, snapState{})
			require.Equal(t, n, snap.Name, "ID %d", i)
			require.EqualValues(t, 1, res.NextSequence, "ID %d", i)
		}
		got := events(t, st, id)
		require.Len(t, got, 1, "ID %d", i)
		require.Equal(t, id, got[0].AggregateID, "ID %d", i)
		requireStatus(t, st, id, "long"+n)
		requireEntries(t, byStatus(t, st, "long"+n),
			[]timebox.AggregateID{id}, []time.Time{at(i)})
		require.Equal(t, []timebox.AggregateID{id}, byLabel(t, st, "long", n))
	}
	require.Equal(t, sortedIDs(stored), listAggregates(t, st, nil))
	for _, id := range stored {
		require.Equal(t, withPrefix(stored, id), listAggregates(t, st, id),
			"prefix of %d bytes", len(id.String()))
	}
}

// hugeSize is the size of the largest event Data the suite stores.
const hugeSize = 16 << 20

// testBadHugePayload appends a batch holding a 16 MiB event between two
// small ones: the backend stores and returns it exactly, or refuses the
// batch with an error and writes nothing of it. Either way the store goes
// on working.
func testBadHugePayload(t *testing.T, s Suite) {
	st, _ := s.bulkIndexed(t)
	id := aid("huge", "payload")
	body := strings.Repeat("0123456789abcdef", hugeSize/16)[:hugeSize-2]
	big := ev("big", string(quote(body)))
	require.Len(t, big.Data, hugeSize)
	batch := []*timebox.Event{ev("small", "1"), big, ev("small", "2")}

	var head int64
	if err := st.AppendEvents(id, 0, batch); err != nil {
		t.Logf("16 MiB event refused: %v", err)
		requireUntouched(t, st)
		require.Empty(t, events(t, st, id))
	} else {
		requireStored(t, id, 0, batch, events(t, st, id))
		var v any
		res, err := st.GetSnapshot(id, &v)
		require.NoError(t, err)
		requireStored(t, id, 0, batch, res.AdditionalEvents)
		require.EqualValues(t, hugeSize+2, res.EventsSize)
		head = 3
	}
	require.NoError(t, st.AppendEvents(id, head, items("after", 1)))
	require.Len(t, events(t, st, id), int(head)+1)
}

// testBadHugeBatch appends 10,000 events in one batch: stored and returned
// exactly, or refused with nothing written.
func testBadHugeBatch(t *testing.T, s Suite) {
	st, calls := s.bulkIndexed(t)
	id := aid("huge", "batch")
	batch := items("e", 10_000)
	if err := st.AppendEvents(id, 0, batch); err != nil {
		t.Logf("10,000-event batch refused: %v", err)
		requireUntouched(t, st)
		require.Empty(t, events(t, st, id))
		return
	}
	require.Equal(t, 1, *calls)
	requireStored(t, id, 0, batch, events(t, st, id))
	got, err := st.GetEvents(id, 9_995)
	require.NoError(t, err)
	requireStored(t, id, 9_995, batch[9_995:], got)
	requireStatus(t, st, id, "open")

	vc := conflict(t, st.AppendEvents(id, 9_990, items("late", 1)))
	require.EqualValues(t, 10_000, vc.ActualSequence)
	requireStored(t, id, 9_990, batch[9_990:], vc.NewEvents)
	require.NoError(t, st.AppendEvents(id, 10_000, items("next", 1)))
	require.Len(t, events(t, st, id), 10_001)
}

// testBadHugeSequences uses sequences near math.MaxInt64: appends there
// conflict, reads there are empty, and a snapshot or append that would take
// an aggregate's head there either fails, changing nothing, or is stored
// and read back exactly.
func testBadHugeSequences(t *testing.T, s Suite) {
	st := s.store(t)
	fresh, id := aid("fresh"), aid("order", "1")
	for _, seq := range []int64{math.MaxInt64, math.MaxInt64 - 1, 1 << 53, 1<<53 + 1} {
		vc := conflict(t, st.AppendEvents(fresh, seq, items("a", 1)))
		require.Zero(t, vc.ActualSequence, "at %d", seq)
		require.Empty(t, vc.NewEvents, "at %d", seq)
		conflict(t, st.AppendEvents(fresh, seq, nil))
		got, err := st.GetEvents(fresh, seq)
		require.NoError(t, err)
		require.Empty(t, got)
	}
	requireUntouched(t, st)

	seed(t, st, id, items("a", 2)...)
	for _, seq := range []int64{math.MaxInt64, math.MaxInt64 - 1, 1 << 53, 1<<53 + 1} {
		vc := conflict(t, st.AppendEvents(id, seq, items("b", 1)))
		require.EqualValues(t, 2, vc.ActualSequence, "at %d", seq)
		require.Empty(t, vc.NewEvents, "at %d", seq)
		got, err := st.GetEvents(id, seq)
		require.NoError(t, err)
		require.Empty(t, got, "from %d", seq)
	}
	requireStored(t, id, 0, items("a", 2), events(t, st, id))
	_, res := getSnapshot(t, st, id, snapState{})
	require.Zero(t, res.SnapshotSize)

	for _, seq := range []int64{1<<53 + 1, math.MaxInt64 - 1} {
		requireHugeHead(t, st, aid("huge", fmt.Sprint(seq)), seq)
	}
}

// requireHugeHead moves a new aggregate's head to seq with a snapshot and
// appends one event there. Each step may fail, leaving the aggregate as it
// was, or must be read back exactly.
func requireHugeHead(t *testing.T, st *timebox.Store, id timebox.AggregateID, seq int64) {
	t.Helper()
	if err := st.PutSnapshot(id, snapState{Name: "far"}, seq); err != nil {
		t.Logf("snapshot at %d refused: %v", seq, err)
		snap, res := getSnapshot(t, st, id, snapState{})
		require.Zero(t, res.NextSequence)
		require.Empty(t, snap.Name)
		return
	}
	snap, res := getSnapshot(t, st, id, snapState{})
	require.Equal(t, "far", snap.Name, "snapshot at %d", seq)
	require.Equal(t, seq, res.NextSequence, "snapshot at %d", seq)
	require.Empty(t, res.AdditionalEvents)
	vc := conflict(t, st.AppendEvents(id, 0, items("a", 1)))
	require.Equal(t, seq, vc.ActualSequence, "head after snapshot at %d", seq)

	if err := st.AppendEvents(id, seq, items("a", 1)); err != nil {
		t.Logf("append at %d refused: %v", seq, err)
		require.Empty(t, events(t, st, id))
		return
	}
	requireStored(t, id, seq, items("a", 1), events(t, st, id))
	got, err := st.GetEvents(id, seq)
	require.NoError(t, err)
	requireStored(t, id, seq, items("a", 1), got)
	vc = conflict(t, st.AppendEvents(id, seq, items("b", 1)))
	require.Equal(t, seq+1, vc.ActualSequence)
}

// testBadDoneContext calls the Store with a ctx already cancelled: each
// call returns context.Canceled and nothing is written or read.
func testBadDoneContext(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("order", "1")
	seed(t, st, id, items("a", 1)...)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for name, err := range map[string]error{
		"append":   st.AppendEventsContext(ctx, id, 1, items("b", 1)),
		"snapshot": st.PutSnapshotContext(ctx, id, snapState{Name: "s"}, 1),
	} {
		require.ErrorIs(t, err, context.Canceled, name)
	}
	if err := st.ArchiveContext(ctx, id); s.Archiving {
		require.ErrorIs(t, err, context.Canceled)
	} else {
		require.ErrorIs(t, err, timebox.ErrArchivingDisabled)
	}
	_, err := st.GetEventsContext(ctx, id, 0)
	require.ErrorIs(t, err, context.Canceled)
	_, err = st.GetSnapshotContext(ctx, id, &snapState{})
	require.ErrorIs(t, err, context.Canceled)
	if _, err = st.ReadAll(ctx, timebox.Position{}, 10); s.NoFeed {
		require.ErrorIs(t, err, timebox.ErrFeedNotSupported)
	} else {
		require.ErrorIs(t, err, context.Canceled)
		// A consumer started or changed with a done ctx claims and
		// creates nothing: Consume once raced its claim against ctx.
		h := func(context.Context, *timebox.Event) error { return nil }
		for range 20 {
			require.ErrorIs(t, st.Consume(ctx, "c", h, timebox.WithPartitions(4)), context.Canceled)
		}
		require.ErrorIs(t, st.ResetConsumer(ctx, "c", timebox.Position{}), context.Canceled)
		require.ErrorIs(t, st.DeleteConsumer(ctx, "c"), context.Canceled)
		list, err := st.Consumers(context.Background())
		require.NoError(t, err)
		require.Empty(t, list)
	}

	requireStored(t, id, 0, items("a", 1), events(t, st, id))
	_, res := getSnapshot(t, st, id, snapState{})
	require.Zero(t, res.SnapshotSize)
}
