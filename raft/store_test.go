package raft

import (
	"testing"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/conformance"
)

func TestConformance(t *testing.T) {
	conformance.Run(t, conformance.Suite{
		New: func(t *testing.T, cfg timebox.Config) *timebox.Store {
			s := newStore(t, newSingle(t, Config{}), cfg)
			t.Cleanup(func() { _ = s.Close() })
			return s
		},
		Archiving: true,
		NewBackend: func(t *testing.T) timebox.Backend {
			return newSingle(t, Config{})
		},
		// One store on a single node; each executor still stands for a
		// process.
		Shared: func(t *testing.T, cfg timebox.Config, n int) []*timebox.Store {
			s := newStore(t, newSingle(t, Config{}), cfg)
			t.Cleanup(func() { _ = s.Close() })
			res := make([]*timebox.Store, n)
			for i := range res {
				res[i] = s
			}
			return res
		},
	})
}
