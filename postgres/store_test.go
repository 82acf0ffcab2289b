package postgres_test

import (
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	"go.uber.org/goleak"

	"github.com/kode4food/timebox/internal/bench"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/conformance"
	"github.com/kode4food/timebox/internal/faultproxy"
	"github.com/kode4food/timebox/internal/testserver"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(bench.WithTargets(m, benchTargets...))
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
		Server: func(t *testing.T) string {
			u, err := url.Parse(testserver.PostgresURL(t))
			require.NoError(t, err)
			return u.Host
		},
		Faulty: func(
			t *testing.T, px *faultproxy.Proxy, cfg timebox.Config, n int,
		) []*timebox.Store {
			pc := testConfig(t)
			u, err := url.Parse(pc.URL)
			require.NoError(t, err)
			u.Host = px.Addr()
			pc.URL = u.String()
			pc.MaxConns = 1
			return conformance.Stores(t, n, cfg, opener(pc))
		},
		Shared: func(t *testing.T, cfg timebox.Config, n int) []*timebox.Store {
			pc := testConfig(t)
			pc.MaxConns = 2
			return conformance.Stores(t, n, cfg, opener(pc))
		},
	})
}
