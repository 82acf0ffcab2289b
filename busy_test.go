package timebox_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/testlog"
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
	store, err := timebox.NewStore(b, timebox.Config{
		SnapshotRatio: 1e-9, SnapshotMinEvents: 1,
	})
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

// flakySnapshots is a memory backend whose conditional snapshots first
// fail: the first fail calls return ErrUnavailable, the next skip ones
// are skipped as if another process had moved the head (nothing is
// written). With legacy set, a skip is answered nil, as a backend written
// before ErrSnapshotSkipped does.
type flakySnapshots struct {
	*memory.Persistence
	fail, skip int32
	legacy     bool
	calls      atomic.Int32
}

func (f *flakySnapshots) SaveSnapshot(ctx context.Context, req timebox.SnapshotRequest) error {
	n := f.calls.Add(1)
	var err error
	switch {
	case !req.IfHead:
		return f.Persistence.SaveSnapshot(ctx, req)
	case n <= f.fail:
		return timebox.ErrUnavailable
	case n <= f.fail+f.skip:
		err = timebox.ErrSnapshotSkipped
	default:
		err = f.Persistence.SaveSnapshot(ctx, req)
	}
	if f.legacy && errors.Is(err, timebox.ErrSnapshotSkipped) {
		return nil
	}
	return err
}

// busyStore runs commands deposits through one Executor on a store on b
// with background snapshots due every minEvents events, and returns the
// store and the aggregate.
func busyStore(
	t *testing.T, b timebox.Backend, minEvents, commands int,
) (*timebox.Store, *timebox.Executor[Account], timebox.AggregateID) {
	t.Helper()
	store, err := timebox.NewStore(b, timebox.Config{
		SnapshotRatio: 1e-9, SnapshotMinEvents: minEvents,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	ex := timebox.NewExecutor(store, func() Account { return Account{} }, accountAppliers)
	id := timebox.NewAggregateID("account", "busy")
	for range commands {
		_, err := ex.Exec(id, deposit(1))
		require.NoError(t, err)
	}
	return store, ex, id
}

// awaitSnapshotAt waits up to 30s for id's snapshot to reach seq, and
// checks it is the state at its sequence (one deposit of 1 per event).
func awaitSnapshotAt(t *testing.T, store *timebox.Store, id timebox.AggregateID, seq int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var acct Account
		res, err := store.GetSnapshot(id, &acct)
		require.NoError(t, err)
		if res.NextSequence >= seq {
			require.EqualValues(t, res.NextSequence, acct.Balance)
			return
		}
		require.False(t, time.Now().After(deadline),
			"snapshot at %d, not %d, after 30s", res.NextSequence, seq)
		time.Sleep(5 * time.Millisecond)
	}
}

// A background snapshot that meets transient failures is retried, so the
// last state of the burst is snapshotted with no further commit.
func TestBusySnapshotRetriesTransientFailures(t *testing.T) {
	b := &flakySnapshots{Persistence: memory.NewPersistence(), fail: 3}
	store, _, id := busyStore(t, b, 5, 5)
	awaitSnapshotAt(t, store, id, 5)
	require.GreaterOrEqual(t, b.calls.Load(), int32(4))
}

// A skipped background snapshot keeps its events counted: the next commit
// tries again rather than waiting for SnapshotMinEvents more events.
func TestBusySnapshotSkipKeepsCount(t *testing.T) {
	b := &flakySnapshots{Persistence: memory.NewPersistence(), skip: 1}
	store, ex, id := busyStore(t, b, 5, 5)
	deadline := time.Now().Add(30 * time.Second)
	for b.calls.Load() == 0 {
		require.False(t, time.Now().After(deadline), "no snapshot tried after 30s")
		time.Sleep(time.Millisecond)
	}
	_, err := ex.Exec(id, deposit(1))
	require.NoError(t, err)
	awaitSnapshotAt(t, store, id, 6)
}

// A backend that answers a skip with nil (the contract before
// ErrSnapshotSkipped) still works: commands and busy snapshots go on (a
// skip is taken as stored), and Executor.SaveSnapshot returns nil whether
// it stored or not.
func TestBusySnapshotLegacyBackend(t *testing.T) {
	b := &flakySnapshots{Persistence: memory.NewPersistence(), legacy: true}
	store, ex, id := busyStore(t, b, 5, 10)
	require.NoError(t, ex.SaveSnapshot(id))
	awaitSnapshotAt(t, store, id, 10)
	require.NoError(t, ex.SaveSnapshot(timebox.NewAggregateID("account", "none")))
}

// panicky is a state whose encoding panics once armed.
type panicky struct{ N int }

var panickyArmed atomic.Bool

func (p panicky) MarshalJSON() ([]byte, error) {
	if panickyArmed.Load() {
		panic("state encoding bug")
	}
	type plain panicky
	return json.Marshal(plain(p))
}

// A state whose MarshalJSON panics in a background snapshot fails that
// snapshot, as an error logged, not the process; commands go on.
func TestBackgroundSnapshotPanicIsLogged(t *testing.T) {
	var logs testlog.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	store, err := timebox.NewStore(memory.NewPersistence(), timebox.Config{
		SnapshotRatio: 1e-9, SnapshotMinEvents: 1, Logger: log,
	})
	require.NoError(t, err)
	ex := timebox.NewExecutor(store, func() panicky { return panicky{} }, timebox.Appliers[panicky]{
		"add": func(p panicky, _ *timebox.Event) panicky { return panicky{p.N + 1} },
	})
	id := timebox.NewAggregateID("panicky", "1")
	add := func(_ panicky, ag *timebox.Aggregator[panicky]) error {
		return timebox.Raise(ag, "add", 1)
	}
	panickyArmed.Store(true)
	defer panickyArmed.Store(false)
	for range 5 {
		_, err := ex.Exec(id, add)
		require.NoError(t, err)
	}
	require.NoError(t, store.Close(), "Close waits for the background snapshots")
	require.Contains(t, logs.String(), "state encoding bug")
	require.Contains(t, logs.String(), "background snapshot failed")
}

// Panics on the paths that rebuild and store a snapshot in the caller's
// goroutine come back as errors: SaveSnapshot returns a *PanicError (an
// applier's keeps its class), and a cold load whose opportunistic
// snapshot's MarshalJSON panics logs it and runs the command; a marshal
// error there was already only logged.
func TestSnapshotPanicsAreErrors(t *testing.T) {
	var logs testlog.Buffer
	store, err := timebox.NewStore(memory.NewPersistence(), timebox.Config{
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	boom := false
	apps := timebox.Appliers[panicky]{
		"add": func(p panicky, _ *timebox.Event) panicky {
			if boom {
				panic("applier bug")
			}
			return panicky{p.N + 1}
		},
	}
	newEx := func() *timebox.Executor[panicky] {
		return timebox.NewExecutor(store, func() panicky { return panicky{} }, apps)
	}
	id := timebox.NewAggregateID("panicky", "2")
	require.NoError(t, store.AppendEvents(id, 0, []*timebox.Event{
		{Type: "add", Data: []byte(`1`)}, {Type: "add", Data: []byte(`1`)},
	}))

	boom = true
	var pe *timebox.PanicError
	err = newEx().SaveSnapshot(id)
	require.ErrorAs(t, err, &pe)
	require.ErrorIs(t, err, timebox.ErrApplierPanicked)
	boom = false

	panickyArmed.Store(true)
	defer panickyArmed.Store(false)
	err = newEx().SaveSnapshot(id)
	require.ErrorAs(t, err, &pe)
	require.Contains(t, logs.String(), "state encoding bug")

	// A cold load finds two events and no snapshot: it wants one.
	got, err := newEx().Exec(id, func(_ panicky, ag *timebox.Aggregator[panicky]) error {
		return timebox.Raise(ag, "add", 1)
	})
	require.NoError(t, err)
	require.Equal(t, 3, got.N)
	require.Contains(t, logs.String(), "opportunistic snapshot failed")
}
