package timebox_test

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/memory"
)

// The conformance suite tests executors on every backend; these tests
// cover how one Executor queues and batches its own callers, which does not
// depend on the backend.

func newAccounts(t *testing.T) (*timebox.Store, *timebox.Executor[Account]) {
	t.Helper()
	store, err := memory.NewPersistence().NewStore(timebox.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	return store, timebox.NewExecutor(store,
		func() Account { return Account{} }, accountAppliers,
	)
}

func TestBatchedCallersGetTheirOwnResults(t *testing.T) {
	store, accounts := newAccounts(t)
	id := timebox.NewAggregateID("account", "batch")
	const workers, each = 8, 50
	var wg sync.WaitGroup
	var mu sync.Mutex
	balances := map[int]bool{}
	for g := range workers {
		wg.Go(func() {
			for i := range each {
				amount := 1
				if (g+i)%5 == 0 {
					amount = -1 // rejected by the command
				}
				acct, err := accounts.Exec(id, deposit(amount))
				if amount < 0 {
					assert.EqualError(t, err, "deposit must be positive, got -1")
					continue
				}
				if !assert.NoError(t, err) {
					return
				}
				mu.Lock()
				assert.False(t, balances[acct.Balance], "two callers saw balance %d", acct.Balance)
				balances[acct.Balance] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	evs, err := store.GetEvents(id, 0)
	require.NoError(t, err)
	assert.Len(t, evs, len(balances))
	for i := 1; i <= len(balances); i++ {
		assert.True(t, balances[i], "no caller saw balance %d", i)
	}
}

func TestCancelledCallerDoesNotAbortOthers(t *testing.T) {
	store, accounts := newAccounts(t)
	id := timebox.NewAggregateID("account", "cancel")
	release := make(chan struct{})
	started := make(chan struct{})
	blocking := func(_ Account, ag *timebox.Aggregator[Account]) error {
		close(started)
		<-release
		return timebox.Raise(ag, "deposited", 1)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		_, err := accounts.Exec(id, blocking)
		assert.NoError(t, err)
	})
	<-started

	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 2)
	wg.Go(func() {
		_, err := accounts.ExecContext(ctx, id, deposit(10))
		errs <- err
	})
	wg.Go(func() {
		_, err := accounts.Exec(id, deposit(100))
		errs <- err
	})
	// Both wait in the queue behind the blocking command.
	waitFor(t, func() bool { return accounts.Pending(id) == 2 })
	cancel()
	close(release)
	wg.Wait()
	close(errs)
	var got []error
	for err := range errs {
		got = append(got, err)
	}
	assert.ElementsMatch(t, []error{context.Canceled, nil}, got)
	acct, err := accounts.Exec(id, func(Account, *timebox.Aggregator[Account]) error { return nil })
	require.NoError(t, err)
	assert.Equal(t, 101, acct.Balance)
	evs, _ := store.GetEvents(id, 0)
	assert.Len(t, evs, 2)
}

// A call whose command ran and whose batch's append is under way gets the
// append's outcome, even when its ctx ends meanwhile: the batch's append
// goes on for the callers still waiting.
func TestInFlightCallerGetsAppendOutcome(t *testing.T) {
	indexing, proceed := make(chan struct{}), make(chan struct{})
	store, err := memory.NewPersistence().NewStore(timebox.Config{
		Indexer: func(evs []*timebox.Event) []*timebox.Index {
			if len(evs) > 1 { // the batch of both queued calls
				close(indexing)
				<-proceed
			}
			return nil
		},
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	accounts := timebox.NewExecutor(store,
		func() Account { return Account{} }, accountAppliers,
	)
	id := timebox.NewAggregateID("account", "inflight")
	release, started := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		_, err := accounts.Exec(id, func(_ Account, ag *timebox.Aggregator[Account]) error {
			close(started)
			<-release
			return timebox.Raise(ag, "deposited", 1)
		})
		assert.NoError(t, err)
	})
	<-started
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 2)
	wg.Go(func() {
		_, err := accounts.ExecContext(ctx, id, deposit(10))
		errs <- err
	})
	waitFor(t, func() bool { return accounts.Pending(id) == 1 })
	wg.Go(func() {
		_, err := accounts.Exec(id, deposit(100))
		errs <- err
	})
	waitFor(t, func() bool { return accounts.Pending(id) == 2 })
	close(release)
	<-indexing
	cancel()
	close(proceed)
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}
	acct, err := accounts.Get(id)
	require.NoError(t, err)
	assert.Equal(t, 111, acct.Balance)
	evs, _ := store.GetEvents(id, 0)
	assert.Len(t, evs, 3)
}

func TestCommandPanicIsAnError(t *testing.T) {
	_, accounts := newAccounts(t)
	id := timebox.NewAggregateID("account", "panic")
	_, err := accounts.Exec(id, func(Account, *timebox.Aggregator[Account]) error {
		panic("boom")
	})
	assert.ErrorContains(t, err, "boom")
	assert.ErrorIs(t, err, timebox.ErrCommandPanicked)
	acct, err := accounts.Exec(id, deposit(3))
	require.NoError(t, err)
	assert.Equal(t, 3, acct.Balance)
}

func TestExecutorWithoutStoreOrCommand(t *testing.T) {
	var none *timebox.Store
	ex := timebox.NewExecutor(none, func() Account { return Account{} }, accountAppliers)
	_, err := ex.Exec(timebox.NewAggregateID("a"), deposit(1))
	assert.Error(t, err)

	_, accounts := newAccounts(t)
	_, err = accounts.Exec(timebox.NewAggregateID("a"), nil)
	assert.Error(t, err)

	var noCtx context.Context
	_, err = accounts.ExecContext(noCtx, timebox.NewAggregateID("a"), deposit(1))
	assert.ErrorContains(t, err, "context is required")
	_, err = accounts.GetContext(noCtx, timebox.NewAggregateID("a"))
	assert.ErrorContains(t, err, "context is required")
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(errors.New("condition not met in 10s"))
		}
		time.Sleep(time.Millisecond)
	}
}

// TestMaxRetriesOneRecovers: with MaxRetries 1, a command that meets
// another writer's events fails with ErrMaxRetriesExceeded, and the next
// Exec runs on the aggregate's latest state rather than on the state the
// Executor had cached (which would conflict again, for ever).
func TestMaxRetriesOneRecovers(t *testing.T) {
	store, err := memory.NewPersistence().NewStore(timebox.Config{MaxRetries: 1})
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	ex := timebox.NewExecutor(store, func() Account { return Account{} }, accountAppliers)
	other := timebox.NewExecutor(store, func() Account { return Account{} }, accountAppliers)
	id := timebox.NewAggregateID("account", "r1")

	_, err = ex.Exec(id, deposit(1)) // cached at sequence 1
	require.NoError(t, err)
	_, err = other.Exec(id, deposit(10))
	require.NoError(t, err)

	_, err = ex.Exec(id, deposit(100))
	require.ErrorIs(t, err, timebox.ErrMaxRetriesExceeded)
	for range 3 {
		_, err = ex.Exec(id, deposit(100))
		require.NoError(t, err)
	}
	acct, err := ex.Get(id)
	require.NoError(t, err)
	require.Equal(t, 311, acct.Balance)
	evs, err := store.GetEvents(id, 0)
	require.NoError(t, err)
	require.Len(t, evs, 5)
}

// TestSequenceOverflow: an append at the head whose events would take
// the aggregate past math.MaxInt64 fails with ErrInvalidSequence and
// writes nothing, through the Store and through an Executor, on an
// aggregate a snapshot moved to the last sequences; one at a sequence
// other than the head is a conflict, as ever.
func TestSequenceOverflow(t *testing.T) {
	store, ex := newAccounts(t)
	id := timebox.NewAggregateID("account", "far")
	deposits := func(n int) []*timebox.Event {
		evs := make([]*timebox.Event, n)
		for i := range evs {
			evs[i] = &timebox.Event{Type: "deposited", Data: []byte(`1`)}
		}
		return evs
	}
	var vc *timebox.VersionConflictError
	require.ErrorAs(t, store.AppendEvents(id, math.MaxInt64, deposits(1)), &vc)

	require.NoError(t, store.PutSnapshot(id, Account{Balance: 5}, math.MaxInt64-1))
	err := store.AppendEvents(id, math.MaxInt64-1, deposits(2))
	require.ErrorIs(t, err, timebox.ErrInvalidSequence)
	require.ErrorAs(t, store.AppendEvents(id, math.MaxInt64, deposits(1)), &vc)
	require.EqualValues(t, math.MaxInt64-1, vc.ActualSequence)

	acct, err := ex.Exec(id, deposit(1)) // the last sequence there is
	require.NoError(t, err)
	require.Equal(t, 6, acct.Balance)
	_, err = ex.Exec(id, deposit(1))
	require.ErrorIs(t, err, timebox.ErrInvalidSequence)
	err = store.AppendEvents(id, math.MaxInt64, deposits(1))
	require.ErrorIs(t, err, timebox.ErrInvalidSequence)

	evs, err := store.GetEvents(id, 0)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	require.EqualValues(t, math.MaxInt64-1, evs[0].Sequence)
	acct, err = ex.GetLatest(context.Background(), id)
	require.NoError(t, err)
	require.Equal(t, 6, acct.Balance)
}

// TestGetNeverOlderThanOwnExec: with a cache of one entry, cold loads of
// an aggregate (Get, SaveSnapshot) race its commands while other Gets
// evict it; a Get after an Exec returns must never see an older state.
// A cold load that began before a commit once cached its older state
// after the commit's had been evicted.
func TestGetNeverOlderThanOwnExec(t *testing.T) {
	for _, snapshots := range []bool{false, true} {
		store, err := memory.NewPersistence().NewStore(timebox.Config{CacheSize: 1})
		require.NoError(t, err)
		ex := timebox.NewExecutor(store, func() Account { return Account{} }, accountAppliers)
		a := timebox.NewAggregateID("account", "a")
		others := []timebox.AggregateID{
			timebox.NewAggregateID("account", "b"), timebox.NewAggregateID("account", "c"),
		}
		stop := make(chan struct{})
		var bg sync.WaitGroup
		for g := range 3 {
			bg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					switch {
					case g == 0:
						_, _ = ex.Get(a)
					case g == 1:
						_, _ = ex.Get(others[i%2])
					case snapshots:
						_ = ex.SaveSnapshot(a)
					}
				}
			})
		}
		for start := time.Now(); time.Since(start) < 2*time.Second; {
			v, err := ex.Exec(a, deposit(1))
			require.NoError(t, err)
			got, err := ex.Get(a)
			require.NoError(t, err)
			require.GreaterOrEqual(t, got.Balance, v.Balance, "snapshots %v", snapshots)
		}
		close(stop)
		bg.Wait()
		require.NoError(t, store.Close())
	}
}
