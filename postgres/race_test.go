package postgres_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/conformance"
)

// TestRaceExecAcrossProcesses runs Exec on one aggregate through several
// Persistence values on one Prefix, each with its own pool, as separate
// processes would: the log must hold exactly the acknowledged events, and
// no command may fail with a raw duplicate-key error.
func TestRaceExecAcrossProcesses(t *testing.T) {
	cfg := testConfig(t)
	stores := make([]*timebox.Store, 4)
	for i := range stores {
		st, err := newPersistence(t, cfg).NewStore(timebox.Config{MaxRetries: 1000})
		require.NoError(t, err)
		t.Cleanup(func() { _ = st.Close() })
		stores[i] = st
	}
	conformance.RaceExec(t, stores, 4, 25)
}
