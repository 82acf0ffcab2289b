package goroutine_test

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox/internal/goroutine"
)

// deep calls fn n frames down, so a stack that grows (and is copied)
// between two calls is covered.
func deep(n int, fn func()) {
	var pad [256]byte
	if n == 0 {
		fn()
		return
	}
	deep(n-1, fn)
	_ = pad
}

func TestStableAndDistinct(t *testing.T) {
	for name, fn := range map[string]func() uint64{
		"Token": func() uint64 { return uint64(goroutine.Token()) },
		"ID":    goroutine.ID,
	} {
		t.Run(name, func(t *testing.T) {
			me := fn()
			require.NotZero(t, me)
			deep(200, func() { require.Equal(t, me, fn()) })

			const n = 16
			ids := make(chan uint64, n)
			var start, wg sync.WaitGroup
			start.Add(1)
			for range n {
				wg.Go(func() {
					start.Wait() // all n live at once
					id := fn()
					deep(100, func() { assert.Equal(t, id, fn()) })
					ids <- id
				})
			}
			start.Done()
			wg.Wait()
			close(ids)
			seen := map[uint64]bool{me: true}
			for id := range ids {
				assert.NotZero(t, id)
				assert.False(t, seen[id], "%d seen twice", id)
				seen[id] = true
			}
		})
	}
}

func BenchmarkToken(b *testing.B) {
	for b.Loop() {
		goroutine.Token()
	}
}

func BenchmarkID(b *testing.B) {
	for b.Loop() {
		goroutine.ID()
	}
}
