package redis

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/conformance"
	"github.com/kode4food/timebox/internal/faultproxy"
	"github.com/kode4food/timebox/internal/testserver"
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
		Server: func(t *testing.T) string { return testserver.RedisAddr(t) },
		Faulty: func(
			t *testing.T, px *faultproxy.Proxy, cfg timebox.Config, n int,
		) []*timebox.Store {
			rc := testConfig(t, Config{Addr: px.Addr()})
			res := make([]*timebox.Store, n)
			for i := range res {
				p, err := NewPersistence(rc)
				require.NoError(t, err)
				res[i], err = p.NewStore(cfg)
				require.NoError(t, err)
				t.Cleanup(func() { _ = res[i].Close() })
			}
			return res
		},
		Shared: func(t *testing.T, cfg timebox.Config, n int) []*timebox.Store {
			rc := testConfig(t, Config{})
			res := make([]*timebox.Store, n)
			for i := range res {
				p, err := NewPersistence(rc)
				require.NoError(t, err)
				res[i], err = p.NewStore(cfg)
				require.NoError(t, err)
				t.Cleanup(func() { _ = res[i].Close() })
			}
			return res
		},
	})
}
