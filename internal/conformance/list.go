package conformance

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
)

var listCases = []testCase{
	{"PrefixByWholeParts", testListPrefix},
	{"NilListsAllSorted", testListAll},
	{"OddIDsRoundTrip", testListOddIDs},
	{"SnapshotOnlyListed", testListSnapshotOnly},
	{"EmptyAppendCreatesNothing", testListEmptyAppend},
	{"EmptyResultsNotNil", testListEmptyResults},
}

func listAggregates(
	t *testing.T, st *timebox.Store, prefix timebox.AggregateID,
) []timebox.AggregateID {
	t.Helper()
	res, err := st.ListAggregates(prefix)
	require.NoError(t, err)
	require.NotNil(t, res)
	return res
}

func sortedIDs(ids []timebox.AggregateID) []timebox.AggregateID {
	res := slices.Clone(ids)
	slices.SortFunc(res, timebox.AggregateID.Compare)
	return res
}

// withPrefix returns the IDs among ids that start with prefix, sorted.
func withPrefix(
	ids []timebox.AggregateID, prefix timebox.AggregateID,
) []timebox.AggregateID {
	res := []timebox.AggregateID{}
	for _, id := range ids {
		if id.HasPrefix(prefix) {
			res = append(res, id)
		}
	}
	return sortedIDs(res)
}

func testListPrefix(t *testing.T, s Suite) {
	st := s.store(t)
	ids := []timebox.AggregateID{
		aid("order", "1"), aid("order"), aid("order:1"), aid("orders", "1"),
		aid("order", "2", "x"), aid("order", "10"), aid("other"), aid("orde"),
		aid("order", "1", "line", "1"),
	}
	for _, id := range ids {
		seed(t, st, id, items("a", 1)...)
	}
	require.Equal(t, []timebox.AggregateID{
		aid("order"), aid("order", "1"), aid("order", "1", "line", "1"),
		aid("order", "10"), aid("order", "2", "x"),
	}, listAggregates(t, st, aid("order")))
	require.Equal(t, []timebox.AggregateID{
		aid("order", "1"), aid("order", "1", "line", "1"),
	}, listAggregates(t, st, aid("order", "1")))
	require.Equal(t, []timebox.AggregateID{aid("order", "2", "x")},
		listAggregates(t, st, aid("order", "2")))
	require.Equal(t, []timebox.AggregateID{aid("order:1")},
		listAggregates(t, st, aid("order:1")))
	require.Empty(t, listAggregates(t, st, aid("ord")))
	require.Empty(t, listAggregates(t, st, aid("order", "3")))
	require.Empty(t, listAggregates(t, st, aid("order", "2", "x", "y")))
}

func testListAll(t *testing.T, s Suite) {
	st := s.store(t)
	ids := []timebox.AggregateID{
		aid("b"), aid("a", "2"), aid("a"), aid("c", "1"), aid("a", "10"),
		aid("B"), aid("a", "1"),
	}
	for _, id := range ids {
		seed(t, st, id, items("a", 1)...)
	}
	require.Equal(t, sortedIDs(ids), listAggregates(t, st, nil))
}

// oddParts are ID parts that a backend's key encoding must keep apart.
var oddParts = []string{
	"a:b", "a", "b", "a\\", "\\b", "a\\:b", `"q"`, "{x}", "{", "}", "x\x00y",
	"\x00", "ünï©ode", "日本", "a/b", "a|b", "%3A", "%", "*", "?", "[a]",
	"a b", "a\nb", "'", "a.b", "-", "\xff\xfe",
}

// oddIDs returns IDs built from oddParts, including pairs that would
// collide under a naive join.
func oddIDs() []timebox.AggregateID {
	var ids []timebox.AggregateID
	for _, p := range oddParts {
		ids = append(ids, aid(p))
	}
	return append(ids,
		aid("a", "b"), aid("a", "b", "c"), aid("a:b", "c"), aid("a", "b:c"),
		aid("a\\", "b"), aid("a", "\\b"), aid("x", "\x00y"), aid("x\x00", "y"),
		aid("{", "}"), aid("a", ":b"), aid(":", ":"), aid("::"),
	)
}

func testListOddIDs(t *testing.T, s Suite) {
	st, _ := s.indexedStore(t)
	ids := oddIDs()
	for i, id := range ids {
		n := fmt.Sprint(i)
		seed(t, st, id, idx(i, indexSpec{
			Status: strp("s" + n), Labels: map[string]string{"odd": n},
		}))
		require.NoError(t, st.PutSnapshot(id, snapState{Name: n}, 1))
	}
	for i, id := range ids {
		n := fmt.Sprint(i)
		got := events(t, st, id)
		require.Len(t, got, 1, "%q", id)
		require.Equal(t, id, got[0].AggregateID)
		snap, _ := getSnapshot(t, st, id, snapState{})
		require.Equal(t, n, snap.Name, "%q", id)
		requireStatus(t, st, id, "s"+n)
		requireEntries(t, byStatus(t, st, "s"+n),
			[]timebox.AggregateID{id}, []time.Time{at(i)})
		require.Equal(t, []timebox.AggregateID{id}, byLabel(t, st, "odd", n))
	}
	all := listAggregates(t, st, nil)
	require.Equal(t, sortedIDs(ids), all)
	for _, id := range ids {
		require.Equal(t, withPrefix(ids, id), listAggregates(t, st, id),
			"prefix %q", id)
	}
	require.Equal(t, withPrefix(ids, aid("a")), listAggregates(t, st, aid("a")))
}

func testListSnapshotOnly(t *testing.T, s Suite) {
	st := s.store(t)
	snap, ev := aid("snap", "only"), aid("snap", "events")
	require.NoError(t, st.PutSnapshot(snap, snapState{Name: "s"}, 0))
	seed(t, st, ev, items("a", 1)...)
	require.NoError(t, st.PutSnapshot(aid("beyond"), snapState{}, 4))
	require.Equal(t, []timebox.AggregateID{aid("beyond"), ev, snap},
		listAggregates(t, st, nil))
	require.Equal(t, []timebox.AggregateID{ev, snap},
		listAggregates(t, st, aid("snap")))
}

func testListEmptyAppend(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("empty")
	require.NoError(t, st.AppendEvents(id, 0, nil))
	require.NoError(t, st.AppendEvents(id, 0, []*timebox.Event{}))
	require.Empty(t, listAggregates(t, st, nil))
	require.Empty(t, listAggregates(t, st, id))
	require.Empty(t, events(t, st, id))
}

func testListEmptyResults(t *testing.T, s Suite) {
	st := s.store(t)
	require.Empty(t, listAggregates(t, st, nil))
	require.Empty(t, listAggregates(t, st, aid("x")))
	require.Empty(t, byStatus(t, st, "open"))
	require.Empty(t, byStatus(t, st, ""))
	require.Empty(t, labelValues(t, st, "region"))
	require.Empty(t, byLabel(t, st, "region", "eu"))

	seed(t, st, aid("a"), items("a", 1)...)
	require.Empty(t, listAggregates(t, st, aid("b")))
	require.Empty(t, byStatus(t, st, "open"))
	require.Empty(t, labelValues(t, st, "region"))
	require.Empty(t, byLabel(t, st, "region", "eu"))
}
