package conformance

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
)

var pageCases = []testCase{
	{"StatusPagesConcatenate", testPageStatus},
	{"LabelPagesConcatenate", testPageLabel},
	{"ListPagesConcatenate", testPageList},
	{"StableBetweenPages", testPageStable},
	{"StableWhenStatusSetAgain", testPageStatusSetAgain},
	{"StableUnderConcurrentAppends", testPageConcurrent},
	{"EmptyAndLimits", testPageEmpty},
	{"BadCursor", testPageBadCursor},
	{"CursorOfAnotherPrefix", testPageForeignCursor},
}

// pageIDs are IDs whose key order differs from Compare order, with odd
// bytes, under and beside the prefix ["order"].
var pageIDs = []timebox.AggregateID{
	aid("order"), aid("order", "1"), aid("order", "10"), aid("order", "2", "x"),
	aid("order1"), aid("order-x"), aid("order:1"), aid("order", "é"),
	aid("order", "a b"), aid("order", "\x00"), aid("order", "~"), aid("orde"),
	aid("other", "1"), aid("order", "Z"), aid("order", "z"), aid("order", "%"),
	aid("order", "\xff"), aid("order", "a\xfe\xfd"), aid("\xff"),
}

func statusPages(
	t *testing.T, st *timebox.Store, status string, limit int,
) []timebox.StatusEntry {
	t.Helper()
	var res []timebox.StatusEntry
	var after timebox.Cursor
	for range 1000 {
		page, err := st.ListAggregatesByStatusPage(context.Background(), status, after, limit)
		require.NoError(t, err)
		require.NotNil(t, page.Entries)
		require.LessOrEqual(t, len(page.Entries), limit)
		res = append(res, page.Entries...)
		if page.Next == "" {
			return res
		}
		require.Len(t, page.Entries, limit, "a page before the last is full")
		after = page.Next
	}
	t.Fatal("paging did not end")
	return nil
}

func idPages(
	t *testing.T, limit int,
	next func(after timebox.Cursor) (timebox.IDPage, error),
) []timebox.AggregateID {
	t.Helper()
	var res []timebox.AggregateID
	var after timebox.Cursor
	for range 1000 {
		page, err := next(after)
		require.NoError(t, err)
		require.NotNil(t, page.IDs)
		require.LessOrEqual(t, len(page.IDs), limit)
		res = append(res, page.IDs...)
		if page.Next == "" {
			return res
		}
		require.Len(t, page.IDs, limit, "a page before the last is full")
		after = page.Next
	}
	t.Fatal("paging did not end")
	return nil
}

func labelPages(t *testing.T, st *timebox.Store, label, value string, limit int) []timebox.AggregateID {
	t.Helper()
	return idPages(t, limit, func(after timebox.Cursor) (timebox.IDPage, error) {
		return st.ListAggregatesByLabelPage(context.Background(), label, value, after, limit)
	})
}

func listPages(t *testing.T, st *timebox.Store, prefix timebox.AggregateID, limit int) []timebox.AggregateID {
	t.Helper()
	return idPages(t, limit, func(after timebox.Cursor) (timebox.IDPage, error) {
		return st.ListAggregatesPage(context.Background(), prefix, after, limit)
	})
}

// inKeyOrder returns ids sorted by CompareKey.
func inKeyOrder(ids []timebox.AggregateID) []timebox.AggregateID {
	res := slices.Clone(ids)
	slices.SortFunc(res, timebox.AggregateID.CompareKey)
	return res
}

func requireSameIDs(t *testing.T, want, got []timebox.AggregateID) {
	t.Helper()
	require.Equal(t, len(want), len(got), "want %q, got %q", want, got)
	for i := range want {
		require.True(t, want[i].Equal(got[i]), "entry %d: want %q, got %q", i, want[i], got[i])
	}
}

func testPageStatus(t *testing.T, s Suite) {
	st, _ := s.indexedStore(t)
	// Three entry times, so ties are broken by key.
	for i, id := range pageIDs {
		seed(t, st, id, idx(i%3, status("open")))
	}
	seed(t, st, aid("closed", "1"), idx(0, status("closed")))
	full := byStatus(t, st, "open")
	require.Len(t, full, len(pageIDs))
	want := slices.Clone(full)
	slices.SortFunc(want, func(a, b timebox.StatusEntry) int {
		if c := a.Timestamp.Compare(b.Timestamp); c != 0 {
			return c
		}
		return a.ID.CompareKey(b.ID)
	})
	for _, limit := range []int{1, 3, 5, len(pageIDs), 100, math.MaxInt} {
		got := statusPages(t, st, "open", limit)
		require.Len(t, got, len(want), "limit %d", limit)
		for i := range want {
			require.True(t, want[i].ID.Equal(got[i].ID), "limit %d entry %d: %q", limit, i, got[i].ID)
			require.True(t, want[i].Timestamp.Equal(got[i].Timestamp))
		}
	}
}

func testPageLabel(t *testing.T, s Suite) {
	st, _ := s.indexedStore(t)
	var want []timebox.AggregateID
	for i, id := range pageIDs {
		v := "even"
		if i%2 == 1 {
			v = "odd"
		} else {
			want = append(want, id)
		}
		seed(t, st, id, idx(i, labels("parity", v)))
	}
	want = inKeyOrder(want)
	for _, limit := range []int{1, 4, 100, math.MaxInt} {
		requireSameIDs(t, want, labelPages(t, st, "parity", "even", limit))
	}
}

func testPageList(t *testing.T, s Suite) {
	st := s.store(t)
	for _, id := range pageIDs {
		seed(t, st, id, items("a", 1)...)
	}
	require.NoError(t, st.PutSnapshot(aid("snap", "only"), 1, 0))
	all := append(slices.Clone(pageIDs), aid("snap", "only"))
	for _, limit := range []int{1, 3, 100, math.MaxInt} {
		requireSameIDs(t, inKeyOrder(withPrefix(all, aid("order"))),
			listPages(t, st, aid("order"), limit))
		requireSameIDs(t, inKeyOrder(all), listPages(t, st, nil, limit))
	}
}

// testPageForeignCursor pages the aggregates under a prefix from a cursor
// that names an ID of another listing (a cursor is valid for any query of
// its kind): before, among and after the prefix's IDs. A page holds the
// IDs under the prefix that sort after the cursor's, and no other.
func testPageForeignCursor(t *testing.T, s Suite) {
	st := s.store(t)
	ctx := context.Background()
	// The last ID sorts after every prefix's IDs: its page has a Next.
	ids := append(slices.Clone(pageIDs), aid("zz"))
	for _, id := range ids {
		seed(t, st, id, items("a", 1)...)
	}
	var after timebox.Cursor
	for range len(ids) - 1 {
		page, err := st.ListAggregatesPage(ctx, nil, after, 1)
		require.NoError(t, err)
		require.Len(t, page.IDs, 1)
		require.NotEmpty(t, page.Next)
		cur := page.IDs[0]
		for _, prefix := range []timebox.AggregateID{
			aid("order"), aid("orde"), aid("order", "2"), aid("other"), aid("\xff"),
		} {
			want := []timebox.AggregateID{}
			for _, id := range inKeyOrder(withPrefix(ids, prefix)) {
				if id.CompareKey(cur) > 0 {
					want = append(want, id)
				}
			}
			got, err := st.ListAggregatesPage(ctx, prefix, page.Next, math.MaxInt)
			require.NoError(t, err)
			requireSameIDs(t, want, got.IDs)
		}
		after = page.Next
	}
}

// testPageStable changes the lists between pages: an entry returned once
// is never returned again, and one that stayed put throughout is returned.
func testPageStable(t *testing.T, s Suite) {
	st, _ := s.indexedStore(t)
	const n = 20
	ids := make([]timebox.AggregateID, n)
	for i := range ids {
		ids[i] = aid("acct", fmt.Sprintf("%02d", i))
		seed(t, st, ids[i], idx(i, status("open")), idx(i, labels("tier", "gold")))
	}
	ctx := context.Background()
	first, err := st.ListAggregatesByStatusPage(ctx, "open", "", 5)
	require.NoError(t, err)
	lfirst, err := st.ListAggregatesByLabelPage(ctx, "tier", "gold", "", 5)
	require.NoError(t, err)
	afirst, err := st.ListAggregatesPage(ctx, aid("acct"), "", 5)
	require.NoError(t, err)

	// New entries before and after the cursors, one returned entry
	// leaves, one not yet returned leaves.
	seed(t, st, aid("acct", "00a"), idx(0, status("open")), idx(0, labels("tier", "gold")))
	seed(t, st, aid("acct", "99"), idx(99, status("open")), idx(99, labels("tier", "gold")))
	appendAt(t, st, ids[1], idx(50, status("closed")), idx(50, labels("tier", "")))
	appendAt(t, st, ids[10], idx(50, status("closed")), idx(50, labels("tier", "")))

	rest := func(first []timebox.AggregateID, next func(timebox.Cursor) (timebox.IDPage, error), after timebox.Cursor) {
		t.Helper()
		seen := map[string]bool{}
		got := slices.Clone(first)
		for after != "" {
			page, err := next(after)
			require.NoError(t, err)
			got = append(got, page.IDs...)
			after = page.Next
		}
		for _, id := range got {
			require.False(t, seen[id.String()], "%q returned twice", id)
			seen[id.String()] = true
		}
		for i, id := range ids {
			if i != 1 && i != 10 {
				require.True(t, seen[id.String()], "%q skipped", id)
			}
		}
		require.False(t, seen[ids[10].String()], "left before its page")
		require.True(t, seen["acct/99"] || seen[aid("acct", "99").String()], "entered after the cursor")
		require.False(t, seen[aid("acct", "00a").String()], "entered before the cursor")
	}
	var sfirst []timebox.AggregateID
	for _, e := range first.Entries {
		sfirst = append(sfirst, e.ID)
	}
	rest(sfirst, func(c timebox.Cursor) (timebox.IDPage, error) {
		p, err := st.ListAggregatesByStatusPage(ctx, "open", c, 5)
		res := timebox.IDPage{Next: p.Next}
		for _, e := range p.Entries {
			res.IDs = append(res.IDs, e.ID)
		}
		return res, err
	}, first.Next)
	rest(lfirst.IDs, func(c timebox.Cursor) (timebox.IDPage, error) {
		return st.ListAggregatesByLabelPage(ctx, "tier", "gold", c, 5)
	}, lfirst.Next)

	// The aggregate list keeps every aggregate (none is archived).
	got := slices.Clone(afirst.IDs)
	for after := afirst.Next; after != ""; {
		page, err := st.ListAggregatesPage(ctx, aid("acct"), after, 5)
		require.NoError(t, err)
		got = append(got, page.IDs...)
		after = page.Next
	}
	want := inKeyOrder(append(slices.Clone(ids), aid("acct", "99")))
	requireSameIDs(t, want, got)
}

// testPageStatusSetAgain sets the status again, between pages, on
// aggregates already in it, one returned already and one not yet: each
// stays where it was, so every aggregate is returned exactly once, at the
// time it entered the status.
func testPageStatusSetAgain(t *testing.T, s Suite) {
	st, _ := s.indexedStore(t)
	const n = 9
	ids := make([]timebox.AggregateID, n)
	for i := range ids {
		ids[i] = aid("acct", fmt.Sprintf("%02d", i))
		seed(t, st, ids[i], idx(i, status("open")))
	}
	ctx := context.Background()
	first, err := st.ListAggregatesByStatusPage(ctx, "open", "", 3)
	require.NoError(t, err)
	require.Len(t, first.Entries, 3)
	appendAt(t, st, ids[0], idx(50, status("open")))
	appendAt(t, st, ids[5], idx(51, status("open")))

	got := slices.Clone(first.Entries)
	for after := first.Next; after != ""; {
		page, err := st.ListAggregatesByStatusPage(ctx, "open", after, 3)
		require.NoError(t, err)
		got = append(got, page.Entries...)
		after = page.Next
	}
	require.Len(t, got, n)
	for i, e := range got {
		require.True(t, ids[i].Equal(e.ID), "entry %d: %q", i, e.ID)
		require.True(t, at(i).Equal(e.Timestamp), "entry %d time: %v", i, e.Timestamp)
	}
}

// testPageConcurrent pages while writers add aggregates to the status:
// every aggregate there before paging began is returned exactly once.
func testPageConcurrent(t *testing.T, s Suite) {
	st, _ := s.indexedStore(t)
	const n = 60
	before := map[string]bool{}
	for i := range n {
		id := aid("c", fmt.Sprintf("%03d", i))
		seed(t, st, id, idx(i, status("open")))
		before[id.String()] = true
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil && i < 200; i++ {
				id := aid("c", fmt.Sprintf("w%d-%03d", w, i))
				_ = st.AppendEvents(id, 0, []*timebox.Event{idx(i%n, status("open"))})
			}
		})
	}
	got := statusPages(t, st, "open", 7)
	cancel()
	wg.Wait()
	seen := map[string]bool{}
	for _, e := range got {
		require.False(t, seen[e.ID.String()], "%q returned twice", e.ID)
		seen[e.ID.String()] = true
	}
	for id := range before {
		require.True(t, seen[id], "%s skipped", id)
	}
	for i := 1; i < len(got); i++ {
		require.True(t, got[i-1].Timestamp.Compare(got[i].Timestamp) < 0 ||
			got[i-1].Timestamp.Equal(got[i].Timestamp) && got[i-1].ID.CompareKey(got[i].ID) < 0,
			"entries %d and %d out of order", i-1, i)
	}
}

func testPageEmpty(t *testing.T, s Suite) {
	st, _ := s.indexedStore(t)
	ctx := context.Background()
	sp, err := st.ListAggregatesByStatusPage(ctx, "none", "", 10)
	require.NoError(t, err)
	require.NotNil(t, sp.Entries)
	require.Empty(t, sp.Entries)
	require.Empty(t, sp.Next)
	lp, err := st.ListAggregatesByLabelPage(ctx, "l", "v", "", 10)
	require.NoError(t, err)
	require.NotNil(t, lp.IDs)
	require.Empty(t, lp.Next)
	ap, err := st.ListAggregatesPage(ctx, nil, "", 10)
	require.NoError(t, err)
	require.NotNil(t, ap.IDs)
	require.Empty(t, ap.IDs)

	// Exactly limit entries: one page, no next.
	seed(t, st, aid("e", "1"), idx(0, status("open")))
	seed(t, st, aid("e", "2"), idx(0, status("open")))
	sp, err = st.ListAggregatesByStatusPage(ctx, "open", "", 2)
	require.NoError(t, err)
	require.Len(t, sp.Entries, 2)
	require.Empty(t, sp.Next)

	// The largest limit reads everything in one page.
	sp, err = st.ListAggregatesByStatusPage(ctx, "open", "", math.MaxInt)
	require.NoError(t, err)
	require.Len(t, sp.Entries, 2)
	require.Empty(t, sp.Next)
	ap, err = st.ListAggregatesPage(ctx, aid("e"), "", math.MaxInt)
	require.NoError(t, err)
	require.Len(t, ap.IDs, 2)
	require.Empty(t, ap.Next)
	lp, err = st.ListAggregatesByLabelPage(ctx, "l", "v", "", math.MaxInt)
	require.NoError(t, err)
	require.Empty(t, lp.IDs)
	require.Empty(t, lp.Next)

	for _, limit := range []int{0, -1, math.MinInt} {
		_, err = st.ListAggregatesByStatusPage(ctx, "open", "", limit)
		require.ErrorIs(t, err, timebox.ErrInvalidLimit)
		_, err = st.ListAggregatesByLabelPage(ctx, "l", "v", "", limit)
		require.ErrorIs(t, err, timebox.ErrInvalidLimit)
		_, err = st.ListAggregatesPage(ctx, nil, "", limit)
		require.ErrorIs(t, err, timebox.ErrInvalidLimit)
	}
	_, err = st.ListAggregatesPage(ctx, aid("a", ""), "", 1)
	require.ErrorIs(t, err, timebox.ErrInvalidAggregateID)
}

func testPageBadCursor(t *testing.T, s Suite) {
	st, _ := s.indexedStore(t)
	ctx := context.Background()
	seed(t, st, aid("b", "1"), idx(0, status("open")), idx(0, labels("l", "v")))
	seed(t, st, aid("b", "2"), idx(0, status("open")), idx(0, labels("l", "v")))
	sp, err := st.ListAggregatesByStatusPage(ctx, "open", "", 1)
	require.NoError(t, err)
	require.NotEmpty(t, sp.Next)
	lp, err := st.ListAggregatesByLabelPage(ctx, "l", "v", "", 1)
	require.NoError(t, err)
	require.NotEmpty(t, lp.Next)

	for _, bad := range []timebox.Cursor{"!!", "e30", "bm90IGpzb24", lp.Next} {
		_, err = st.ListAggregatesByStatusPage(ctx, "open", bad, 1)
		require.ErrorIs(t, err, timebox.ErrInvalidCursor, "%q", bad)
	}
	for _, bad := range []timebox.Cursor{"!!", sp.Next} {
		_, err = st.ListAggregatesByLabelPage(ctx, "l", "v", bad, 1)
		require.ErrorIs(t, err, timebox.ErrInvalidCursor)
		_, err = st.ListAggregatesPage(ctx, nil, bad, 1)
		require.ErrorIs(t, err, timebox.ErrInvalidCursor)
	}
	require.NoError(t, st.Close())
	_, err = st.ListAggregatesByStatusPage(ctx, "open", "", 1)
	require.ErrorIs(t, err, timebox.ErrClosed)
}
