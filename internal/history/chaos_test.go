package history_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox/internal/history"
)

func TestOnceSharesOneRun(t *testing.T) {
	boom := errors.New("boom")
	var runs atomic.Int64
	f := history.Once(func(context.Context) error {
		runs.Add(1)
		time.Sleep(10 * time.Millisecond)
		return boom
	})
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = f(context.Background()) })
	}
	wg.Wait()
	require.Equal(t, int64(1), runs.Load())
	for _, err := range errs {
		require.ErrorIs(t, err, boom)
	}
}

func TestEvery(t *testing.T) {
	ctx := context.Background()
	var rounds []int
	err := history.Every(ctx, 50*time.Millisecond, time.Millisecond,
		func(round int) error {
			rounds = append(rounds, round)
			return nil
		})
	require.NoError(t, err)
	require.NotEmpty(t, rounds)
	for i, r := range rounds {
		require.Equal(t, i, r)
	}

	boom := errors.New("boom")
	n := 0
	err = history.Every(ctx, time.Minute, time.Millisecond, func(int) error {
		if n++; n == 3 {
			return boom
		}
		return nil
	})
	require.ErrorIs(t, err, boom)
	require.Equal(t, 3, n)

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	err = history.Every(cctx, time.Minute, time.Hour, func(int) error { return nil })
	require.ErrorIs(t, err, context.Canceled)
}

func TestRunChaosMemory(t *testing.T) {
	plan := history.NewPlan()
	plan.Duration, plan.Window = duration(), duration()/4
	var faults atomic.Int64
	rep := history.RunChaos(t, plan, "memory", "pause", memoryStores(t, 2),
		func(ctx context.Context) error {
			faults.Add(1)
			return history.Sleep(ctx, plan.Window)
		})
	require.Equal(t, int64(1), faults.Load())
	require.Equal(t, 1, rep.Takeovers)
	require.Equal(t, 3, rep.Restarts, "a restart before, during and after the fault")
	require.Zero(t, rep.Crashes)
	require.Equal(t, rep.Feed, rep.Handled)
}

// With one store closed throughout (on a backend of its own, as closing a
// store closes its backend), every consumer incarnation that lands on it
// crashes at once and one on the next store takes over; the workloads'
// calls on it fail, writing nothing.
func TestRunChaosMemoryStoreDown(t *testing.T) {
	plan := history.NewPlan()
	plan.Duration, plan.Window = duration(), duration()/4
	stores := memoryStores(t, 3)
	stores[1] = memoryStores(t, 1)[0] // a process that cannot reach the store
	require.NoError(t, stores[1].Close())
	rep := history.RunChaos(t, plan, "memory", "a store closed", stores,
		func(ctx context.Context) error {
			return history.Sleep(ctx, plan.Window)
		})
	require.Positive(t, rep.Crashes)
}
