package history_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/conformance"
	"github.com/kode4food/timebox/internal/history"
	"github.com/kode4food/timebox/memory"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// memoryStores returns n stores sharing one memory backend, as n processes
// would share a server.
func memoryStores(t *testing.T, n int) []*timebox.Store {
	p := memory.NewPersistence()
	return conformance.Stores(t, n, timebox.Config{},
		func() (timebox.Backend, error) { return p, nil })
}

func duration() time.Duration {
	if testing.Short() {
		return 500 * time.Millisecond
	}
	return 2 * time.Second
}

func TestRunMemory(t *testing.T) {
	for _, useExec := range []bool{false, true} {
		t.Run(fmt.Sprintf("exec=%v", useExec), func(t *testing.T) {
			rep, err := history.Run(context.Background(), history.Workload{
				Stores:   memoryStores(t, 2),
				Duration: duration(),
				UseExec:  useExec,
			})
			require.NoError(t, err)
			history.Require(t, rep)
			require.Equal(t, porcupine.Ok, rep.Linearizable)
			require.Zero(t, rep.Anomalies())
			require.Zero(t, rep.Failed+rep.Ambiguous)
			require.Positive(t, rep.Acknowledged)
			require.Positive(t, rep.Reads)
			require.Equal(t, rep.Invoked, rep.OK+rep.Conflict)
			require.False(t, rep.Fault)
			require.Positive(t, rep.Before)
			if !useExec {
				require.Positive(t, rep.Conflict, "workers racing on 3 aggregates")
			}
		})
	}
}

func TestRunFaultWindow(t *testing.T) {
	var called bool
	rep, err := history.Run(context.Background(), history.Workload{
		Stores:   memoryStores(t, 1),
		Duration: duration(),
		Fault: func(ctx context.Context) error {
			called = true
			time.Sleep(duration() / 5)
			return errors.New("fault undone")
		},
	})
	require.NoError(t, err)
	history.Require(t, rep)
	require.True(t, called)
	require.True(t, rep.Fault)
	require.True(t, rep.Recovered)
	require.GreaterOrEqual(t, rep.Elapsed, duration())
	require.Positive(t, rep.Before)
	require.Positive(t, rep.During)
	require.Positive(t, rep.After)
	require.EqualError(t, rep.FaultErr, "fault undone")
	require.Contains(t, rep.Markdown("memory", "idle fault"), "| memory | idle fault |")
}

func TestRunNoStores(t *testing.T) {
	_, err := history.Run(context.Background(), history.Workload{})
	require.ErrorIs(t, err, history.ErrNoStores)
}

func TestRunCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rep, err := history.Run(ctx, history.Workload{
		Stores: memoryStores(t, 1),
		Fault:  func(context.Context) error { return nil },
	})
	require.NoError(t, err)
	require.Zero(t, rep.Invoked)
	require.Less(t, rep.Elapsed, time.Minute)
}

func TestRecorderOnStore(t *testing.T) {
	st := memoryStores(t, 1)[0]
	ex := history.NewExecutor(st)
	rec := history.NewRecorder()
	ctx := context.Background()
	id := timebox.NewAggregateID("order", "1")

	require.NoError(t, rec.Append(ctx, st, 0, id, 0, rec.NewBatch(2)))
	require.ErrorIs(t, rec.Append(ctx, st, 1, id, 0, rec.NewBatch(1)),
		timebox.ErrVersionConflict)
	at, err := rec.Exec(ctx, ex, 2, id, rec.NewBatch(3))
	require.NoError(t, err)
	require.EqualValues(t, 2, at)
	evs, err := rec.Read(ctx, st, 0, id, 1)
	require.NoError(t, err)
	require.Len(t, evs, 4)
	require.NoError(t, rec.Append(ctx, st, 0, id, 5, rec.NewBatch(1)))

	ops := rec.Ops()
	require.Len(t, ops, 5)
	require.Equal(t, history.Conflict, ops[1].Outcome)
	require.EqualValues(t, 2, ops[1].Actual)
	require.Len(t, ops[1].Seen, 2)
	require.EqualValues(t, 2, ops[2].Expected)
	for _, op := range ops {
		require.LessOrEqual(t, op.Call, op.Return, op.String())
	}
	rep := history.Check(t, st, rec)
	require.Equal(t, 6, rep.Events)
	require.Equal(t, 3, rep.Acknowledged)
	require.Equal(t, porcupine.Ok, rep.Linearizable)
}

func TestCheckFindsLostAckOnStore(t *testing.T) {
	st := memoryStores(t, 1)[0]
	rec := history.NewRecorder()
	ctx := context.Background()
	id := timebox.NewAggregateID("order", "1")
	require.NoError(t, rec.Append(ctx, st, 0, id, 0, rec.NewBatch(1)))
	// An acknowledgement the store never saw: a lost write.
	rec.Add(history.Op{
		Aggregate: id, Kind: history.Append, Expected: 1,
		Batch: rec.NewBatch(2), Outcome: history.OK,
		Call: rec.Now(), Return: rec.Now(),
	})
	_, err := rec.Read(ctx, st, 1, id, 0)
	require.NoError(t, err)

	rep, err := history.Summarize(ctx, st, rec.Ops(), time.Minute)
	require.NoError(t, err)
	require.Equal(t, 2, rep.Lost)
	require.Equal(t, porcupine.Illegal, rep.Linearizable)
	require.Equal(t, 2, rep.Anomalies())
}

func TestClassify(t *testing.T) {
	vc := &timebox.VersionConflictError{ExpectedSequence: 1}
	for err, want := range map[error]history.Outcome{
		nil: history.OK,
		vc:  history.Conflict,
		fmt.Errorf("x: %w", timebox.ErrMaxRetriesExceeded):                     history.Conflict,
		fmt.Errorf("x: %w", timebox.ErrUnknownOutcome):                         history.Ambiguous,
		context.DeadlineExceeded:                                               history.Failed,
		fmt.Errorf("%w: %w", timebox.ErrUnknownOutcome, context.Canceled):      history.Ambiguous,
		fmt.Errorf("%w: %w", context.DeadlineExceeded, timebox.ErrUnavailable): history.Failed,
		fmt.Errorf("%w: %w: %w", timebox.ErrUnknownOutcome,
			context.DeadlineExceeded, timebox.ErrUnavailable): history.Ambiguous,
		fmt.Errorf("read: %w", io.ErrUnexpectedEOF): history.Ambiguous,
		timebox.ErrClosed:          history.Failed,
		errors.New("syntax error"): history.Failed,
	} {
		require.Equal(t, want, history.Classify(err), "%v", err)
	}
}

// losing is a memory backend that loses the reply of every third append
// it stored.
type losing struct {
	timebox.Backend
	n atomic.Int64
}

func (l *losing) Append(ctx context.Context, req timebox.AppendRequest) error {
	err := l.Backend.Append(ctx, req)
	if err == nil && len(req.Events) > 0 && l.n.Add(1)%3 == 0 {
		return fmt.Errorf("reply lost: %w", timebox.ErrUnknownOutcome)
	}
	return err
}

// TestRunCountsResends: with replies lost, the Store re-sends the appends,
// finds them stored, and the report counts them; nothing is ambiguous.
func TestRunCountsResends(t *testing.T) {
	for _, useExec := range []bool{false, true} {
		t.Run(fmt.Sprintf("exec=%v", useExec), func(t *testing.T) {
			b := &losing{Backend: memory.NewPersistence()}
			stores := conformance.Stores(t, 2, timebox.Config{Hooks: history.Hooks{}},
				func() (timebox.Backend, error) { return b, nil })
			rep, err := history.Run(context.Background(), history.Workload{
				Stores:   stores,
				Duration: duration(),
				UseExec:  useExec,
			})
			require.NoError(t, err)
			history.Require(t, rep)
			require.Zero(t, rep.Failed+rep.Ambiguous)
			require.Positive(t, rep.Settled)
			require.Equal(t, rep.Resent, rep.Settled, "every re-send found its append")
			require.Contains(t, rep.Markdown("memory", "lost replies"),
				fmt.Sprintf("| %d (%d) |", rep.Resent, rep.Settled))
		})
	}
}
