package postgres_test

import (
	"testing"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/conformance"
)

// TestRaceExecAcrossProcesses runs Exec on one aggregate through several
// Persistence values on one Prefix, each with its own pool, as separate
// processes would: the log must hold exactly the acknowledged events, and
// no command may fail with a raw duplicate-key error.
func TestRaceExecAcrossProcesses(t *testing.T) {
	stores := conformance.Stores(t, 4, timebox.Config{MaxRetries: 1000},
		opener(testConfig(t)))
	conformance.RaceExec(t, stores, 4, 25)
}
