package redis

import (
	"testing"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/conformance"
)

func TestConformance(t *testing.T) {
	conformance.Run(t, conformance.Suite{
		New: func(t *testing.T, cfg timebox.Config) *timebox.Store {
			return newStore(t, Config{}, cfg)
		},
		Archiving: true,
		NewBackend: func(t *testing.T) timebox.Backend {
			return newPersistence(t, Config{})
		},
	})
}
