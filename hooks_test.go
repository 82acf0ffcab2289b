package timebox_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/memory"
)

// recorder is a timebox.Hooks that records what it is told.
type recorder struct {
	mu        sync.Mutex
	log       []string
	commands  []timebox.CommandDone
	appends   []timebox.AppendDone
	conflicts []timebox.ConflictInfo
	loads     []timebox.LoadInfo
	snapshots []timebox.SnapshotInfo
}

type hookKey struct{}

func (r *recorder) note(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = append(r.log, s)
}

func (r *recorder) CommandStart(ctx context.Context, info timebox.CommandInfo) context.Context {
	r.note("command-start " + info.AggregateType)
	return context.WithValue(ctx, hookKey{}, "command")
}

func (r *recorder) CommandEnd(ctx context.Context, info timebox.CommandDone) {
	r.note(fmt.Sprintf("command-end %v %s", ctx.Value(hookKey{}), info.Outcome))
	r.mu.Lock()
	defer r.mu.Unlock()
	r.commands = append(r.commands, info)
}

func (r *recorder) AppendStart(ctx context.Context, info timebox.AppendInfo) context.Context {
	r.note(fmt.Sprintf("append-start %v %d", ctx.Value(hookKey{}), info.Events))
	return ctx
}

func (r *recorder) AppendEnd(_ context.Context, info timebox.AppendDone) {
	r.note("append-end " + string(info.Outcome))
	r.mu.Lock()
	defer r.mu.Unlock()
	r.appends = append(r.appends, info)
}

func (r *recorder) Conflict(_ context.Context, info timebox.ConflictInfo) {
	r.note(fmt.Sprintf("conflict %d %v", info.Attempt, info.Retry))
	r.mu.Lock()
	defer r.mu.Unlock()
	r.conflicts = append(r.conflicts, info)
}

func (r *recorder) Load(_ context.Context, info timebox.LoadInfo) {
	r.note(fmt.Sprintf("load %v %d", info.Snapshot, info.Events))
	r.mu.Lock()
	defer r.mu.Unlock()
	r.loads = append(r.loads, info)
}

func (r *recorder) SnapshotSaved(_ context.Context, info timebox.SnapshotInfo) {
	r.note(fmt.Sprintf("snapshot %d %v", info.Sequence, info.Conditional))
	r.mu.Lock()
	defer r.mu.Unlock()
	r.snapshots = append(r.snapshots, info)
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := r.log
	r.log = nil
	return res
}

func hookedAccounts(t *testing.T, cfg timebox.Config) (*recorder, *timebox.Store, *timebox.Executor[Account]) {
	t.Helper()
	rec := &recorder{}
	cfg.Hooks = rec
	if cfg.SnapshotRatio == 0 {
		// No background snapshot after a commit: the hooks seen are
		// those of the calls the test makes.
		cfg.SnapshotRatio = 1e9
	}
	store, err := memory.NewPersistence().NewStore(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	return rec, store, timebox.NewExecutor(store,
		func() Account { return Account{} }, accountAppliers)
}

func TestHooksSeeACommand(t *testing.T) {
	rec, store, accounts := hookedAccounts(t, timebox.Config{})
	id := timebox.NewAggregateID("account", "1")

	_, err := accounts.Exec(id, deposit(5))
	require.NoError(t, err)
	assert.Equal(t, []string{
		"command-start account",
		"load false 0",
		"append-start command 1",
		"append-end ok",
		"command-end command ok",
	}, rec.take())
	cmd := rec.commands[0]
	assert.Equal(t, "memory", cmd.Backend)
	assert.Equal(t, "account", cmd.AggregateType)
	assert.True(t, id.Equal(cmd.ID))
	assert.Equal(t, 1, cmd.Attempts)
	assert.Equal(t, 1, cmd.BatchSize)
	assert.NoError(t, cmd.Err)

	_, err = accounts.Exec(id, deposit(-1))
	require.Error(t, err)
	assert.Equal(t, []string{
		"command-start account", "append-start command 0", "append-end ok",
		"command-end command error",
	}, rec.take(), "a cached state: no load; a failed command: a check of the head")
	assert.Equal(t, 1, rec.commands[1].Attempts)
	assert.Equal(t, err, rec.commands[1].Err)

	require.NoError(t, store.AppendEvents(id, 1, []*timebox.Event{{Type: "deposited", Data: []byte("1")}}))
	require.NoError(t, accounts.SaveSnapshot(id))
	assert.Equal(t, []string{
		"append-start <nil> 1", "append-end ok",
		"load false 2", "snapshot 2 true",
	}, rec.take())
	require.NoError(t, store.PutSnapshot(id, Account{Balance: 6}, 2))
	assert.Equal(t, []string{"snapshot 2 false"}, rec.take())
}

func TestHooksSeeConflictsAndRetries(t *testing.T) {
	rec, store, accounts := hookedAccounts(t, timebox.Config{MaxRetries: 2})
	id := timebox.NewAggregateID("account", "2")
	_, err := accounts.Exec(id, deposit(1))
	require.NoError(t, err)
	rec.take()

	// Another writer moves the head under the cached state, once, then on
	// every attempt.
	other := func(at int64) {
		require.NoError(t, store.AppendEvents(id, at, []*timebox.Event{{Type: "deposited", Data: []byte("1")}}))
	}
	other(1)
	rec.take()
	_, err = accounts.Exec(id, deposit(1))
	require.NoError(t, err)
	assert.Equal(t, []string{
		"command-start account",
		"append-start command 1", "append-end conflict", "conflict 1 true",
		"append-start command 1", "append-end ok",
		"command-end command ok",
	}, rec.take())
	assert.Equal(t, 2, rec.commands[1].Attempts)

	other(3)
	rec.take()
	head := int64(4)
	_, err = accounts.Exec(id, func(a Account, ag *timebox.Aggregator[Account]) error {
		other(head)
		head++
		return timebox.Raise(ag, "deposited", 1)
	})
	require.ErrorIs(t, err, timebox.ErrMaxRetriesExceeded)
	log := rec.take()
	assert.Contains(t, log, "conflict 1 true")
	assert.Contains(t, log, "conflict 2 false")
	assert.Equal(t, "command-end command conflict", log[len(log)-1])
	last := rec.commands[len(rec.commands)-1]
	assert.Equal(t, 2, last.Attempts)
	assert.Equal(t, timebox.OutcomeConflict, last.Outcome)
}

func TestHooksCountBatchedCommands(t *testing.T) {
	rec, _, accounts := hookedAccounts(t, timebox.Config{})
	id := timebox.NewAggregateID("account", "3")
	const n = 32
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			_, err := accounts.Exec(id, deposit(1))
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	require.Len(t, rec.commands, n)
	events := 0
	for _, a := range rec.appends {
		events += a.Events
	}
	assert.Equal(t, n, events, "every command's event appended once")
	for _, c := range rec.commands {
		assert.Equal(t, timebox.OutcomeOK, c.Outcome)
		assert.Equal(t, 1, c.Attempts)
		assert.GreaterOrEqual(t, c.BatchSize, 1)
	}
}

func TestOutcomeOf(t *testing.T) {
	for err, want := range map[error]timebox.Outcome{
		nil:                             timebox.OutcomeOK,
		&timebox.VersionConflictError{}: timebox.OutcomeConflict,
		timebox.ErrMaxRetriesExceeded:   timebox.OutcomeConflict,
		timebox.ErrUnknownOutcome:       timebox.OutcomeUnknown,
		fmt.Errorf("%w: %w", timebox.ErrUnknownOutcome, context.Canceled): timebox.OutcomeUnknown,
		context.DeadlineExceeded:   timebox.OutcomeCanceled,
		errors.New("boom"):         timebox.OutcomeError,
		timebox.ErrClosed:          timebox.OutcomeError,
		timebox.ErrSnapshotSkipped: timebox.OutcomeSkipped,
	} {
		assert.Equal(t, want, timebox.OutcomeOf(err), "%v", err)
	}
}

// Hooks see a conditional snapshot that stored nothing as skipped, with
// no error, and a stored one as not skipped.
func TestHooksSeeSkippedSnapshot(t *testing.T) {
	rec, store, ex := hookedAccounts(t, timebox.Config{})
	id := timebox.NewAggregateID("account", "1")
	require.NoError(t, ex.SaveSnapshot(id))
	_, err := ex.Exec(id, deposit(5))
	require.NoError(t, err)
	require.NoError(t, ex.SaveSnapshot(id))
	require.NoError(t, store.Close())
	rec.mu.Lock()
	defer rec.mu.Unlock()
	require.Len(t, rec.snapshots, 2)
	assert.True(t, rec.snapshots[0].Skipped)
	assert.NoError(t, rec.snapshots[0].Err)
	assert.False(t, rec.snapshots[1].Skipped)
	assert.NoError(t, rec.snapshots[1].Err)
	assert.EqualValues(t, 1, rec.snapshots[1].Sequence)
}

// GetLatest's check of the head is an append (of no events) the Store
// sends: AppendStart and AppendEnd see it, as its conflict when another
// writer moved the head.
func TestHooksSeeGetLatest(t *testing.T) {
	rec, store, ex := hookedAccounts(t, timebox.Config{})
	id := timebox.NewAggregateID("account", "1")
	_, err := ex.Exec(id, deposit(5))
	require.NoError(t, err)
	require.NoError(t, store.AppendEvents(id, 1, []*timebox.Event{
		{Type: "deposited", Data: []byte(`2`)},
	}))
	rec.mu.Lock()
	before := len(rec.appends)
	rec.mu.Unlock()
	acct, err := ex.GetLatest(context.Background(), id)
	require.NoError(t, err)
	require.Equal(t, 7, acct.Balance)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	require.Len(t, rec.appends, before+1)
	got := rec.appends[before]
	assert.Zero(t, got.Events)
	assert.EqualValues(t, 1, got.ExpectedSequence)
	assert.Equal(t, timebox.OutcomeConflict, got.Outcome)
}

func TestNoHooksCostNoAllocation(t *testing.T) {
	store, err := memory.NewPersistence().NewStore(timebox.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	id := timebox.NewAggregateID("account", "4")
	// The least of several runs: a sync.Pool emptied by a GC (json's
	// encoder) adds an allocation now and then to either side.
	allocs := func(f func()) float64 {
		least := testing.AllocsPerRun(100, f)
		for range 4 {
			least = min(least, testing.AllocsPerRun(100, f))
		}
		return least
	}
	for point, extra := range timebox.HookPointAllocs(store, id, allocs) {
		if raceEnabled && (point == "append" || point == "load" || point == "snapshot") {
			continue // they wrap calls that use sync.Pool (json, fmt)
		}
		assert.Zero(t, extra, "%s: allocations with no Hooks", point)
	}
}

func BenchmarkExecHooks(b *testing.B) {
	for _, bc := range []struct {
		name  string
		hooks timebox.Hooks
	}{{"off", nil}, {"nop", timebox.NopHooks{}}} {
		b.Run(bc.name, func(b *testing.B) {
			store, _ := memory.NewPersistence().NewStore(timebox.Config{Hooks: bc.hooks})
			defer func() { _ = store.Close() }()
			accounts := timebox.NewExecutor(store,
				func() Account { return Account{} }, accountAppliers)
			id := timebox.NewAggregateID("account", "bench")
			b.ReportAllocs()
			for b.Loop() {
				if _, err := accounts.Exec(id, deposit(1)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// lossy is a backend whose next appends are refused before they are sent
// (refuse) or lose their reply after they were stored (lose).
type lossy struct {
	timebox.Backend
	refuse, lose atomic.Int32
}

func (l *lossy) Append(ctx context.Context, req timebox.AppendRequest) error {
	if l.refuse.Add(-1) >= 0 {
		return fmt.Errorf("refused: %w", timebox.ErrUnavailable)
	}
	err := l.Backend.Append(ctx, req)
	if err == nil && l.lose.Add(-1) >= 0 {
		return fmt.Errorf("reply lost: %w", timebox.ErrUnknownOutcome)
	}
	return err
}

func TestHooksSeeResends(t *testing.T) {
	rec := &recorder{}
	b := &lossy{Backend: memory.NewPersistence()}
	store, err := timebox.NewStore(b, timebox.Config{Hooks: rec, SnapshotRatio: 1e9})
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	accounts := timebox.NewExecutor(store,
		func() Account { return Account{} }, accountAppliers)
	id := timebox.NewAggregateID("account", "1")
	ev := func() []*timebox.Event {
		return []*timebox.Event{{Type: "deposited", Data: []byte("1")}}
	}

	require.NoError(t, store.AppendEvents(id, 0, ev()))
	b.refuse.Store(1)
	require.NoError(t, store.AppendEvents(id, 1, ev()))
	b.lose.Store(1)
	require.NoError(t, store.AppendEvents(id, 2, ev()))
	b.lose.Store(1)
	got, err := accounts.Exec(id, deposit(1))
	require.NoError(t, err)
	assert.Equal(t, 4, got.Balance)

	evs, err := store.GetEvents(id, 0)
	require.NoError(t, err)
	assert.Len(t, evs, 4, "each append stored once")
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var sends []int
	var settled []bool
	for _, a := range rec.appends {
		require.NoError(t, a.Err)
		sends, settled = append(sends, a.Sends), append(settled, a.Settled)
	}
	assert.Equal(t, []int{1, 2, 2, 2}, sends)
	assert.Equal(t, []bool{false, false, true, true}, settled)
}
