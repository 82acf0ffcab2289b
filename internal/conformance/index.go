package conformance

import (
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
)

var indexCases = []testCase{
	{"StatusSet", testIndexStatusSet},
	{"StatusTimeIsLastEvent", testIndexStatusTime},
	{"StatusReplace", testIndexStatusReplace},
	{"StatusKeptOnSameStatus", testIndexStatusKept},
	{"StatusUnchangedByNil", testIndexStatusNil},
	{"StatusClear", testIndexStatusClear},
	{"StatusOrder", testIndexStatusOrder},
	{"Labels", testIndexLabels},
	{"LabelValueShared", testIndexLabelShared},
	{"BatchMerge", testIndexBatchMerge},
	{"IndexerCalls", testIndexerCalls},
	{"ConflictWritesNoIndex", testIndexConflict},
	{"OddValues", testIndexOddValues},
}

// indexSpec is the data of an "idx" event: what the test indexer returns
// for it. Nil makes the indexer return a nil entry.
type indexSpec struct {
	Status *string           `json:"status,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
	Nil    bool              `json:"nil,omitempty"`
}

// recorder is an Indexer returning one entry per "idx" event (none for
// other events) that records the batches it saw.
type recorder struct {
	mu      sync.Mutex
	batches [][]*timebox.Event
}

func (r *recorder) index(evs []*timebox.Event) []*timebox.Index {
	r.mu.Lock()
	r.batches = append(r.batches, evs)
	r.mu.Unlock()
	var res []*timebox.Index
	for _, e := range evs {
		if e.Type != "idx" {
			continue
		}
		var spec indexSpec
		if err := json.Unmarshal(e.Data, &spec); err != nil {
			panic(err)
		}
		if spec.Nil {
			res = append(res, nil)
			continue
		}
		res = append(res, &timebox.Index{Status: spec.Status, Labels: spec.Labels})
	}
	return res
}

func (r *recorder) calls() [][]*timebox.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.batches
}

func (s Suite) indexedStore(t *testing.T) (*timebox.Store, *recorder) {
	r := &recorder{}
	return s.store(t, timebox.Config{Indexer: r.index}), r
}

func strp(s string) *string { return &s }

// idx returns an "idx" event at at(ms) for spec.
func idx(ms int, spec indexSpec) *timebox.Event {
	return &timebox.Event{Timestamp: at(ms), Type: "idx", Data: mustJSON(spec)}
}

func status(s string) indexSpec { return indexSpec{Status: strp(s)} }

func labels(kv ...string) indexSpec {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return indexSpec{Labels: m}
}

// appendAt appends evs at id's current head.
func appendAt(
	t *testing.T, st *timebox.Store, id timebox.AggregateID, evs ...*timebox.Event,
) {
	t.Helper()
	head := int64(len(events(t, st, id)))
	require.NoError(t, st.AppendEvents(id, head, evs))
}

func requireStatus(
	t *testing.T, st *timebox.Store, id timebox.AggregateID, want string,
) {
	t.Helper()
	got, err := st.GetAggregateStatus(id)
	require.NoError(t, err)
	require.Equal(t, want, got, "status of %q", id)
}

func byStatus(t *testing.T, st *timebox.Store, status string) []timebox.StatusEntry {
	t.Helper()
	res, err := st.ListAggregatesByStatus(status)
	require.NoError(t, err)
	require.NotNil(t, res)
	return res
}

// requireEntries checks ids and times of a status list, in order.
func requireEntries(
	t *testing.T, got []timebox.StatusEntry,
	ids []timebox.AggregateID, times []time.Time,
) {
	t.Helper()
	require.Len(t, got, len(ids))
	for i, id := range ids {
		require.True(t, id.Equal(got[i].ID), "entry %d: %q", i, got[i].ID)
		require.True(t, times[i].Equal(got[i].Timestamp),
			"entry %d time: want %v, got %v", i, times[i], got[i].Timestamp)
		require.Same(t, time.UTC, got[i].Timestamp.Location(), "entry %d", i)
	}
}

func labelValues(t *testing.T, st *timebox.Store, label string) []string {
	t.Helper()
	res, err := st.ListLabelValues(label)
	require.NoError(t, err)
	require.NotNil(t, res)
	return res
}

func byLabel(t *testing.T, st *timebox.Store, label, value string) []timebox.AggregateID {
	t.Helper()
	res, err := st.ListAggregatesByLabel(label, value)
	require.NoError(t, err)
	require.NotNil(t, res)
	return res
}

func testIndexStatusSet(t *testing.T, s Suite) {
	st, _ := s.indexedStore(t)
	id := aid("order", "1")
	requireStatus(t, st, id, "")
	require.Empty(t, byStatus(t, st, "open"))

	seed(t, st, id, idx(0, status("open")))
	requireStatus(t, st, id, "open")
	requireEntries(t, byStatus(t, st, "open"),
		[]timebox.AggregateID{id}, []time.Time{at(0)})
	require.Empty(t, byStatus(t, st, "closed"))
	requireStatus(t, st, aid("order", "2"), "")
}

func testIndexStatusTime(t *testing.T, s Suite) {
	st, _ := s.indexedStore(t)
	id := aid("order", "1")
	seed(t, st, id, idx(5, status("open")), ev("x", "1"), idx(9, indexSpec{}))
	requireEntries(t, byStatus(t, st, "open"),
		[]timebox.AggregateID{id}, []time.Time{at(9)})
}

func testIndexStatusReplace(t *testing.T, s Suite) {
	st, _ := s.indexedStore(t)
	id := aid("order", "1")
	seed(t, st, id, idx(1, status("open")))
	appendAt(t, st, id, idx(2, status("shipped")))
	requireStatus(t, st, id, "shipped")
	require.Empty(t, byStatus(t, st, "open"))
	requireEntries(t, byStatus(t, st, "shipped"),
		[]timebox.AggregateID{id}, []time.Time{at(2)})
}

// testIndexStatusKept sets the status an aggregate already has: it stays
// in the status, entered when it was, even when the batch passes through
// another status first. Another status and then this one again takes the
// later batch's time.
func testIndexStatusKept(t *testing.T, s Suite) {
	st, _ := s.indexedStore(t)
	id, other := aid("order", "1"), aid("order", "2")
	seed(t, st, id, idx(1, status("open")))
	seed(t, st, other, idx(2, status("open")))
	appendAt(t, st, id, idx(3, status("open")))
	appendAt(t, st, id, idx(4, status("shipped")), idx(5, status("open")))
	requireStatus(t, st, id, "open")
	requireEntries(t, byStatus(t, st, "open"),
		[]timebox.AggregateID{id, other}, []time.Time{at(1), at(2)})

	appendAt(t, st, id, idx(6, status("shipped")))
	appendAt(t, st, id, idx(7, status("shipped")))
	requireEntries(t, byStatus(t, st, "shipped"),
		[]timebox.AggregateID{id}, []time.Time{at(6)})
	appendAt(t, st, id, idx(8, status("open")))
	require.Empty(t, byStatus(t, st, "shipped"))
	requireEntries(t, byStatus(t, st, "open"),
		[]timebox.AggregateID{other, id}, []time.Time{at(2), at(8)})
}

func testIndexStatusNil(t *testing.T, s Suite) {
	st, _ := s.indexedStore(t)
	id := aid("order", "1")
	seed(t, st, id, idx(1, status("open")))
	appendAt(t, st, id, idx(2, labels("a", "b")), ev("other", "{}"))
	appendAt(t, st, id, idx(3, indexSpec{Nil: true}))
	requireStatus(t, st, id, "open")
	requireEntries(t, byStatus(t, st, "open"),
		[]timebox.AggregateID{id}, []time.Time{at(1)})
}

func testIndexStatusClear(t *testing.T, s Suite) {
	st, _ := s.indexedStore(t)
	id := aid("order", "1")
	seed(t, st, id, idx(1, status("open")))
	appendAt(t, st, id, idx(2, status("")))
	requireStatus(t, st, id, "")
	require.Empty(t, byStatus(t, st, "open"))

	appendAt(t, st, id, idx(3, status("open")))
	requireEntries(t, byStatus(t, st, "open"),
		[]timebox.AggregateID{id}, []time.Time{at(3)})
}

func testIndexStatusOrder(t *testing.T, s Suite) {
	st, _ := s.indexedStore(t)
	a, b, c, d := aid("a"), aid("b"), aid("c"), aid("a", "z")
	seed(t, st, b, idx(20, status("open")))
	seed(t, st, c, idx(10, status("open")))
	seed(t, st, d, idx(10, status("open")))
	seed(t, st, a, idx(10, status("open")))
	seed(t, st, aid("e"), idx(5, status("closed")))
	requireEntries(t, byStatus(t, st, "open"),
		[]timebox.AggregateID{a, d, c, b},
		[]time.Time{at(10), at(10), at(10), at(20)})
}

func testIndexLabels(t *testing.T, s Suite) {
	st, _ := s.indexedStore(t)
	id := aid("order", "1")
	require.Empty(t, labelValues(t, st, "region"))
	require.Empty(t, byLabel(t, st, "region", "eu"))

	seed(t, st, id, idx(1, labels("region", "eu", "tier", "gold")))
	require.Equal(t, []string{"eu"}, labelValues(t, st, "region"))
	require.Equal(t, []string{"gold"}, labelValues(t, st, "tier"))
	require.Equal(t, []timebox.AggregateID{id}, byLabel(t, st, "region", "eu"))
	require.Empty(t, byLabel(t, st, "region", "gold"))
	requireStatus(t, st, id, "")

	appendAt(t, st, id, idx(2, labels("region", "us")))
	require.Equal(t, []string{"us"}, labelValues(t, st, "region"))
	require.Empty(t, byLabel(t, st, "region", "eu"))
	require.Equal(t, []timebox.AggregateID{id}, byLabel(t, st, "region", "us"))
	require.Equal(t, []timebox.AggregateID{id}, byLabel(t, st, "tier", "gold"))

	appendAt(t, st, id, idx(3, labels("region", "us")))
	require.Equal(t, []string{"us"}, labelValues(t, st, "region"))
	require.Equal(t, []timebox.AggregateID{id}, byLabel(t, st, "region", "us"))

	appendAt(t, st, id, idx(3, labels("region", "")))
	require.Empty(t, labelValues(t, st, "region"))
	require.Empty(t, byLabel(t, st, "region", "us"))
	require.Empty(t, byLabel(t, st, "region", ""))
	require.Equal(t, []string{"gold"}, labelValues(t, st, "tier"))
}

func testIndexLabelShared(t *testing.T, s Suite) {
	st, _ := s.indexedStore(t)
	a, b, c := aid("a"), aid("b"), aid("c")
	seed(t, st, b, idx(1, labels("region", "eu")))
	seed(t, st, a, idx(1, labels("region", "eu")))
	seed(t, st, c, idx(1, labels("region", "us")))
	require.Equal(t, []string{"eu", "us"}, labelValues(t, st, "region"))
	require.Equal(t, []timebox.AggregateID{a, b}, byLabel(t, st, "region", "eu"))

	appendAt(t, st, a, idx(2, labels("region", "")))
	require.Equal(t, []string{"eu", "us"}, labelValues(t, st, "region"))
	require.Equal(t, []timebox.AggregateID{b}, byLabel(t, st, "region", "eu"))

	appendAt(t, st, b, idx(3, labels("region", "us")))
	require.Equal(t, []string{"us"}, labelValues(t, st, "region"))
	require.Empty(t, byLabel(t, st, "region", "eu"))
	require.Equal(t, []timebox.AggregateID{b, c}, byLabel(t, st, "region", "us"))
}

func testIndexBatchMerge(t *testing.T, s Suite) {
	st, r := s.indexedStore(t)
	id := aid("order", "1")
	seed(t, st, id,
		idx(1, indexSpec{Status: strp("open"), Labels: map[string]string{
			"a": "1", "b": "2", "c": "3",
		}}),
		idx(2, indexSpec{Nil: true}),
		idx(3, labels("a", "3")),
		idx(4, status("closed")),
		idx(5, indexSpec{}),
		idx(6, labels("b", "")),
		idx(7, indexSpec{Nil: true}),
	)
	require.Len(t, r.calls(), 1)
	requireStatus(t, st, id, "closed")
	require.Empty(t, byStatus(t, st, "open"))
	requireEntries(t, byStatus(t, st, "closed"),
		[]timebox.AggregateID{id}, []time.Time{at(7)})
	require.Equal(t, []string{"3"}, labelValues(t, st, "a"))
	require.Empty(t, labelValues(t, st, "b"))
	require.Equal(t, []string{"3"}, labelValues(t, st, "c"))
	require.Empty(t, byLabel(t, st, "a", "1"))
	require.Equal(t, []timebox.AggregateID{id}, byLabel(t, st, "a", "3"))
}

func testIndexerCalls(t *testing.T, s Suite) {
	st, r := s.indexedStore(t)
	id := aid("order", "1")
	require.NoError(t, st.AppendEvents(id, 0, nil))
	require.Empty(t, r.calls())

	seed(t, st, id, items("a", 3)...)
	require.NoError(t, st.AppendEvents(id, 3, nil))
	require.NoError(t, st.AppendEvents(id, 3, []*timebox.Event{}))
	calls := r.calls()
	require.Len(t, calls, 1)
	requireStored(t, id, 0, items("a", 3), calls[0])

	require.NoError(t, st.AppendEvents(id, 3, items("b", 2)))
	calls = r.calls()
	require.Len(t, calls, 2)
	requireStored(t, id, 3, items("b", 2), calls[1])
}

func testIndexConflict(t *testing.T, s Suite) {
	st, _ := s.indexedStore(t)
	id := aid("order", "1")
	seed(t, st, id, idx(1, indexSpec{
		Status: strp("open"), Labels: map[string]string{"region": "eu"},
	}))
	conflict(t, st.AppendEvents(id, 0, []*timebox.Event{idx(2, indexSpec{
		Status: strp("closed"), Labels: map[string]string{"region": "us"},
	})}))
	requireStatus(t, st, id, "open")
	require.Empty(t, byStatus(t, st, "closed"))
	require.Equal(t, []string{"eu"}, labelValues(t, st, "region"))
}

func testIndexOddValues(t *testing.T, s Suite) {
	st, _ := s.indexedStore(t)
	ids := []timebox.AggregateID{aid("a:b"), aid("a", "b"), aid("ü{x}\x00")}
	for i, id := range ids {
		seed(t, st, id, idx(i, indexSpec{
			Status: strp("in:progress ✓"),
			Labels: map[string]string{"re:gion {x}": "eu:west ✓", "*": "?"},
		}))
	}
	requireEntries(t, byStatus(t, st, "in:progress ✓"),
		ids, []time.Time{at(0), at(1), at(2)})
	require.Empty(t, byStatus(t, st, "in"))
	require.Empty(t, byStatus(t, st, "*"))
	requireStatus(t, st, ids[2], "in:progress ✓")
	require.Equal(t, []string{"eu:west ✓"}, labelValues(t, st, "re:gion {x}"))
	require.Equal(t, []string{"?"}, labelValues(t, st, "*"))
	require.Empty(t, labelValues(t, st, "re"))
	want := []timebox.AggregateID{ids[1], ids[0], ids[2]}
	require.Equal(t, want, byLabel(t, st, "re:gion {x}", "eu:west ✓"))
	require.Equal(t, want, byLabel(t, st, "*", "?"))
	require.Empty(t, byLabel(t, st, "*", "*"))
}
