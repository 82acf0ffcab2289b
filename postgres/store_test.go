package postgres_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/conformance"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestConformance(t *testing.T) {
	conformance.Run(t, conformance.Suite{
		New: func(t *testing.T, cfg timebox.Config) *timebox.Store {
			return newStore(t, cfg)
		},
		Archiving: true,
		NewBackend: func(t *testing.T) timebox.Backend {
			return newPersistence(t, testConfig(t))
		},
	})
}
