package memory_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kode4food/timebox/internal/bench"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/conformance"
	"github.com/kode4food/timebox/memory"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(bench.WithTargets(m, benchTargets...))
}

func TestConformance(t *testing.T) {
	conformance.Run(t, conformance.Suite{
		New: func(t *testing.T, cfg timebox.Config) *timebox.Store {
			s, err := memory.NewPersistence().NewStore(cfg)
			require.NoError(t, err)
			t.Cleanup(func() { _ = s.Close() })
			return s
		},
		Archiving: true,
		NewBackend: func(t *testing.T) timebox.Backend {
			p := memory.NewPersistence()
			t.Cleanup(func() { _ = p.Close() })
			return p
		},
		// One store in memory; each executor still stands for a process.
		Shared: func(t *testing.T, cfg timebox.Config, n int) []*timebox.Store {
			s, err := memory.NewPersistence().NewStore(cfg)
			require.NoError(t, err)
			t.Cleanup(func() { _ = s.Close() })
			res := make([]*timebox.Store, n)
			for i := range res {
				res[i] = s
			}
			return res
		},
	})
}
