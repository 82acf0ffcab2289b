package timebox_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
)

func TestPositionOrderAndText(t *testing.T) {
	a := timebox.Position{Commit: 2, Offset: 9}
	b := timebox.Position{Commit: 3}
	c := timebox.Position{Commit: 3, Offset: 1}
	assert.Equal(t, -1, a.Compare(b))
	assert.Equal(t, -1, b.Compare(c))
	assert.Equal(t, 1, c.Compare(a))
	assert.Equal(t, 0, c.Compare(c))
	assert.True(t, timebox.Position{}.IsZero())
	assert.False(t, a.IsZero())
	assert.Equal(t, -1, timebox.Position{}.Compare(timebox.Position{Offset: 1}))

	max := timebox.Position{Commit: 1<<64 - 1, Offset: 1<<64 - 1}
	for _, p := range []timebox.Position{{}, a, c, max} {
		q, err := timebox.ParsePosition(p.String())
		require.NoError(t, err)
		assert.Equal(t, p, q)
		b, err := json.Marshal(p)
		require.NoError(t, err)
		var r timebox.Position
		require.NoError(t, json.Unmarshal(b, &r))
		assert.Equal(t, p, r)
	}
	assert.Equal(t, `"2.9"`, string(must(json.Marshal(a))))
	for _, bad := range []string{"", "1", "1.", ".1", "a.1", "1.2.3", "-1.0", "1.18446744073709551616"} {
		_, err := timebox.ParsePosition(bad)
		assert.ErrorIs(t, err, timebox.ErrInvalidPosition, "%q", bad)
	}
	var p timebox.Position
	assert.ErrorIs(t, json.Unmarshal([]byte(`"x"`), &p), timebox.ErrInvalidPosition)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestPartitionOfIsStable pins PartitionOf: a consumer's partitions keep
// their aggregates across versions.
func TestPartitionOfIsStable(t *testing.T) {
	id := timebox.NewAggregateID
	assert.Equal(t, 0, timebox.PartitionOf(id("order", "1"), 1))
	assert.Equal(t, 0, timebox.PartitionOf(id("order", "1"), 0))
	got := []int{
		timebox.PartitionOf(id("order", "1"), 8),
		timebox.PartitionOf(id("order", "2"), 8),
		timebox.PartitionOf(id("order1"), 8),
		timebox.PartitionOf(id("a", "b"), 1024),
		timebox.PartitionOf(id("ab"), 1024),
	}
	assert.Equal(t, []int{0, 1, 4, 444, 360}, got)
	// Parts are delimited: ["a","b"] and ["ab"] hash apart.
	assert.NotEqual(t, got[3], got[4])

	counts := make([]int, 8)
	for i := range 8000 {
		counts[timebox.PartitionOf(id("agg", timebox.ID(string(rune('a'+i%26)))+timebox.ID(must(json.Marshal(i)))), 8)]++
	}
	for p, n := range counts {
		assert.InDelta(t, 1000, n, 200, "partition %d", p)
	}
}
