package conformance

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
)

// Stores opens n backends with open and a Store with cfg on each, as n
// processes sharing one server would have; each Store, and with it its
// backend, is closed when t ends. open may return one backend every time,
// for stores that share it.
func Stores(
	t testing.TB, n int, cfg timebox.Config,
	open func() (timebox.Backend, error),
) []*timebox.Store {
	t.Helper()
	res := make([]*timebox.Store, n)
	for i := range res {
		b, err := open()
		require.NoError(t, err)
		st, err := timebox.NewStore(b, cfg)
		if err != nil {
			_ = b.Close()
		}
		require.NoError(t, err)
		t.Cleanup(func() { _ = st.Close() })
		res[i] = st
	}
	return res
}
