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
		Archiving: false,
		NewBackend: func(t *testing.T) timebox.Backend {
			return newSingle(t, Config{})
		},
	})
}
