package postgres_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/conformance"
)

// Four processes (Persistence values, each with its own pool) consume 60
// records with three consumers each, while a fifth, with a short lease,
// took one record and died before acknowledging it.
func TestArchiveAcrossProcesses(t *testing.T) {
	cfg := testConfig(t)
	stores := chaosStores(t, cfg, 4)
	short := cfg
	short.ArchiveLease = 300 * time.Millisecond
	crashed, err := newPersistence(t, short).NewStore(timebox.Config{})
	require.NoError(t, err)
	conformance.ArchiveAcrossProcesses(t, stores, crashed, 60, 3)
}
