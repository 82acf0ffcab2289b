package timebox_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/memory"
)

// stuckSnapshots is a memory backend whose snapshots block until their ctx
// is done, as on a backend that stopped answering.
type stuckSnapshots struct {
	*memory.Persistence
	started chan struct{}
	ended   atomic.Bool
}

func (s *stuckSnapshots) SaveSnapshot(ctx context.Context, _ timebox.SnapshotRequest) error {
	select {
	case s.started <- struct{}{}:
	default:
	}
	<-ctx.Done()
	s.ended.Store(true)
	return ctx.Err()
}

// Close cancels a background snapshot that is stuck and waits for it, and
// the command whose commit started it never waited for it.
func TestCloseCancelsAndWaitsForBackgroundSnapshots(t *testing.T) {
	b := &stuckSnapshots{
		Persistence: memory.NewPersistence(),
		started:     make(chan struct{}, 1),
	}
	// Any event outweighs the state: the first commit starts a snapshot.
	store, err := timebox.NewStore(b, timebox.Config{SnapshotRatio: 1e-9})
	require.NoError(t, err)
	ex := timebox.NewExecutor(store, func() Account { return Account{} }, accountAppliers)
	id := timebox.NewAggregateID("account", "stuck")

	got, err := ex.Exec(id, deposit(5))
	require.NoError(t, err, "the commit does not wait for its snapshot")
	require.Equal(t, 5, got.Balance)
	select {
	case <-b.started:
	case <-time.After(30 * time.Second):
		t.Fatal("no background snapshot started within 30s")
	}
	require.False(t, b.ended.Load())
	require.NoError(t, store.Close())
	require.True(t, b.ended.Load(), "Close returned before the snapshot ended")
}
