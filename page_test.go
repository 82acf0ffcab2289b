package timebox_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/conformance"
	"github.com/kode4food/timebox/memory"
)

// plainBackend hides every optional interface of its Backend, so the Store
// pages from the full lists as it does for a third-party backend.
type plainBackend struct{ timebox.Backend }

func TestPagingFallback(t *testing.T) {
	_, paged := any(plainBackend{}).(timebox.PagedQueries)
	require.False(t, paged)
	_, feeds := any(plainBackend{}).(timebox.Feeder)
	require.False(t, feeds)
	conformance.Run(t, conformance.Suite{
		New: func(t *testing.T, cfg timebox.Config) *timebox.Store {
			s, err := timebox.NewStore(plainBackend{memory.NewPersistence()}, cfg)
			require.NoError(t, err)
			t.Cleanup(func() { _ = s.Close() })
			return s
		},
		NoFeed: true,
	})
}
