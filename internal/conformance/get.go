package conformance

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
)

// getCases cover Executor.Get, GetContext and GetLatest: reading a state
// without appending.
var getCases = []testCase{
	{"UnknownAggregate", testGetUnknown},
	{"FromStoreAndCache", testGetFromStore},
	{"CachedMayLagLatestCatchesUp", testGetLatest},
	{"LatestAfterArchive", testGetLatestReset},
	{"BadInput", testGetBadInput},
	{"IDsPrintDistinctly", testIDString},
}

func testGetUnknown(t *testing.T, s Suite) {
	st := s.store(t)
	ex := tallyExec(st)
	id := aid("tally", "none")
	got, err := ex.Get(id)
	require.NoError(t, err)
	require.Equal(t, tally{}, got)
	got, err = ex.GetLatest(context.Background(), id)
	require.NoError(t, err)
	require.Equal(t, tally{}, got)
	require.Empty(t, events(t, st, id))
	require.Empty(t, listAggregates(t, st, nil))
}

func testGetFromStore(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("tally", "1")
	seed(t, st, id, items("a", 2)...)
	require.NoError(t, st.PutSnapshot(id, tally{Items: []string{"a0", "a1"}}, 2))
	require.NoError(t, st.AppendEvents(id, 2, items("b", 1)))

	ex := tallyExec(st)
	got, err := ex.GetContext(context.Background(), id)
	require.NoError(t, err)
	require.Equal(t, []string{"a0", "a1", "b0"}, got.Items)
	exec(t, ex, id, add("c"), "a0", "a1", "b0", "c")
	got, err = ex.Get(id)
	require.NoError(t, err)
	require.Equal(t, []string{"a0", "a1", "b0", "c"}, got.Items)
	require.Len(t, events(t, st, id), 4)
}

func testGetLatest(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("tally", "1")
	mine, other := tallyExec(st), tallyExec(st)
	exec(t, mine, id, add("a"), "a")
	exec(t, other, id, add("b"), "a", "b")

	// The cached state lags the write made through the other executor.
	got, err := mine.Get(id)
	require.NoError(t, err)
	require.Equal(t, []string{"a"}, got.Items)

	got, err = mine.GetLatest(context.Background(), id)
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b"}, got.Items)
	// The cache caught up; nothing was appended.
	got, err = mine.Get(id)
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b"}, got.Items)
	require.Equal(t, quoted("a", "b"), logItems(t, st, id))

	got, err = mine.GetLatest(context.Background(), id)
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b"}, got.Items)
}

func testGetLatestReset(t *testing.T, s Suite) {
	if !s.Archiving {
		t.Skip("backend does not archive")
	}
	st := s.store(t)
	id := aid("tally", "1")
	ex := tallyExec(st)
	exec(t, ex, id, add("a", "b", "c"), "a", "b", "c")
	require.NoError(t, st.Archive(id))
	seed(t, st, id, items("n", 1)...)
	got, err := ex.GetLatest(context.Background(), id)
	require.NoError(t, err)
	require.Equal(t, []string{"n0"}, got.Items)
}

func testGetBadInput(t *testing.T, s Suite) {
	st := s.store(t)
	ex := tallyExec(st)
	for _, id := range badIDs {
		_, err := ex.Get(id)
		require.ErrorIs(t, err, timebox.ErrInvalidAggregateID)
		_, err = ex.GetLatest(context.Background(), id)
		require.ErrorIs(t, err, timebox.ErrInvalidAggregateID)
	}
	require.NoError(t, st.Close())
	_, err := ex.Get(aid("tally", "1"))
	require.ErrorIs(t, err, timebox.ErrClosed)
	_, err = ex.GetLatest(context.Background(), aid("tally", "1"))
	require.ErrorIs(t, err, timebox.ErrClosed)
}

// testIDString checks that distinct IDs, the bad-input ones included,
// print distinctly, so logs and errors name one aggregate.
func testIDString(t *testing.T, _ Suite) {
	ids := append([]timebox.AggregateID{
		aid("order", "42"), aid("order:42"), aid("order", "4", "2"),
		aid(`order","42`), aid(`a"`), aid(`a\`), aid("a,b"), aid("a", "b"),
		aid("\xff"), aid("\xfe"), aid("\ufffd"), aid("é"), aid("a\x00"),
		aid("[]"), aid(" "),
	}, badIDs...)
	require.Equal(t, `["order","42"]`, aid("order", "42").String())
	seen := map[string]timebox.AggregateID{}
	for _, id := range ids {
		str := id.String()
		if prev, ok := seen[str]; ok {
			require.True(t, prev.Equal(id), "%#v and %#v both print %s", prev, id, str)
		}
		seen[str] = id
	}
}
