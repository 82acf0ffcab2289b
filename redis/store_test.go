package redis

import (
	"testing"

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
			return conformance.Stores(t, n, cfg, opener(rc))
		},
		Shared: func(t *testing.T, cfg timebox.Config, n int) []*timebox.Store {
			rc := testConfig(t, Config{})
			return conformance.Stores(t, n, cfg, opener(rc))
		},
	})
}
