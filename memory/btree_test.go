package memory

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestBTreeMatchesSortedSlice runs random inserts and deletes on a btree
// and on a sorted slice, checking after each step that the tree holds the
// same items, that every ascend from a bound gives the slice's suffix, and
// that the tree keeps its shape (item counts, one leaf depth).
func TestBTreeMatchesSortedSlice(t *testing.T) {
	for _, n := range []int{10, 200, 5000, 20000} {
		r := rand.New(rand.NewPCG(uint64(n), 13))
		tr := newBTree(cmp.Compare[int])
		want := []int{}
		height := 0
		for step := range 4 * n {
			v := r.IntN(n)
			i, found := slices.BinarySearch(want, v)
			if r.IntN(3) == 0 {
				tr.delete(v)
				if found {
					want = slices.Delete(want, i, i+1)
				}
			} else {
				tr.insert(v)
				if !found {
					want = slices.Insert(want, i, v)
				}
			}
			if step%max(1, n/10) != 0 && step != 4*n-1 {
				continue
			}
			require.Equal(t, len(want), tr.size)
			require.Equal(t, want, collect(tr, nil, len(want)+1))
			from := r.IntN(n+2) - 1
			i, _ = slices.BinarySearch(want, from)
			require.Equal(t, want[i:min(len(want), i+7)], collect(tr, &from, 7))
			height = checkShape(t, tr.root, true)
		}
		if n == 20000 {
			require.GreaterOrEqual(t, height, 3, "internal nodes were rebalanced")
		}
		// Empty it: the root goes away.
		for _, v := range slices.Clone(want) {
			tr.delete(v)
		}
		require.Nil(t, tr.root)
		require.Zero(t, tr.size)
		require.Empty(t, collect(tr, nil, 1))
	}
}

// collect returns up to limit items of t from from.
func collect(t *btree[int], from *int, limit int) []int {
	res := []int{}
	t.ascend(from, func(v int) bool {
		res = append(res, v)
		return len(res) < limit
	})
	return res
}

// checkShape checks n's item and child counts and order, and returns its
// height.
func checkShape(t *testing.T, n *node[int], root bool) int {
	t.Helper()
	if n == nil {
		return 0
	}
	require.LessOrEqual(t, len(n.items), maxItems)
	if !root {
		require.GreaterOrEqual(t, len(n.items), minItems)
	}
	require.True(t, slices.IsSorted(n.items))
	if n.children == nil {
		return 1
	}
	require.Len(t, n.children, len(n.items)+1)
	h := checkShape(t, n.children[0], false)
	for i, c := range n.children {
		require.Equal(t, h, checkShape(t, c, false))
		if i > 0 {
			require.Less(t, n.items[i-1], c.items[0])
		}
		if i < len(n.items) {
			require.Less(t, c.items[len(c.items)-1], n.items[i])
		}
	}
	return h + 1
}

// BenchmarkIndexInsert: inserting and deleting again one random key in an
// index of 100,000 keys, as a btree and as a sorted slice with binary
// search insert (the alternative the B-tree was chosen over).
func BenchmarkIndexInsert(b *testing.B) {
	const n = 100_000
	r := rand.New(rand.NewPCG(1, 2))
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("bench:%d", r.Uint64())
	}
	b.Run("btree", func(b *testing.B) {
		tr := newBTree(strings.Compare)
		for _, k := range keys {
			tr.insert(k)
		}
		b.ResetTimer()
		for i := range b.N {
			k := keys[i%n] + "x"
			tr.insert(k)
			tr.delete(k)
		}
	})
	b.Run("sorted-slice", func(b *testing.B) {
		s := slices.Sorted(slices.Values(keys))
		b.ResetTimer()
		for i := range b.N {
			k := keys[i%n] + "x"
			j, _ := slices.BinarySearch(s, k)
			s = slices.Insert(s, j, k)
			s = slices.Delete(s, j, j+1)
		}
	})
}
