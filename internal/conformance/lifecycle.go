package conformance

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
)

var lifecycleCases = []testCase{
	{"Ready", testLifecycleReady},
	{"Config", testLifecycleConfig},
	{"CloseThenErrClosed", testLifecycleClosed},
	{"DoubleClose", testLifecycleDoubleClose},
	{"CloseDuringCalls", testLifecycleCloseDuringCalls},
}

func testLifecycleReady(t *testing.T, s Suite) {
	st := s.store(t)
	ctx, cancel := contextWithTimeout(waitTimeout)
	defer cancel()
	require.NoError(t, st.WaitReady(ctx))
	select {
	case <-st.Ready():
	default:
		t.Fatal("Ready not closed after WaitReady returned nil")
	}
}

func testLifecycleConfig(t *testing.T, s Suite) {
	st := s.store(t)
	require.Equal(t, timebox.DefaultConfig(), st.Config())

	cfg := timebox.Config{
		TrimEvents: true, SnapshotRatio: 2.5, MaxRetries: 3, CacheSize: 7,
	}
	got := s.store(t, cfg).Config()
	require.True(t, got.TrimEvents)
	require.Equal(t, 2.5, got.SnapshotRatio)
	require.Equal(t, 3, got.MaxRetries)
	require.Equal(t, 7, got.CacheSize)
	require.Nil(t, got.Indexer)
}

// closedCalls returns every Store call that must fail with ErrClosed once
// st is closed, by name.
func closedCalls(st *timebox.Store) map[string]func() error {
	ctx := context.Background()
	id := aid("order", "1")
	handler := func(context.Context, *timebox.ArchiveRecord) error { return nil }
	ex := tallyExec(st)
	return map[string]func() error{
		"AppendEvents": func() error {
			return st.AppendEvents(id, 1, items("b", 1))
		},
		"AppendEventsEmpty": func() error { return st.AppendEvents(id, 1, nil) },
		"AppendEventsContext": func() error {
			return st.AppendEventsContext(ctx, id, 1, items("b", 1))
		},
		"GetEvents": func() error {
			_, err := st.GetEvents(id, 0)
			return err
		},
		"GetEventsContext": func() error {
			_, err := st.GetEventsContext(ctx, id, 0)
			return err
		},
		"GetSnapshot": func() error {
			var v any
			_, err := st.GetSnapshot(id, &v)
			return err
		},
		"PutSnapshot": func() error { return st.PutSnapshot(id, 1, 1) },
		"GetAggregateStatus": func() error {
			_, err := st.GetAggregateStatus(id)
			return err
		},
		"ListAggregatesByStatus": func() error {
			_, err := st.ListAggregatesByStatus("open")
			return err
		},
		"ListLabelValues": func() error {
			_, err := st.ListLabelValues("region")
			return err
		},
		"ListAggregatesByLabel": func() error {
			_, err := st.ListAggregatesByLabel("region", "eu")
			return err
		},
		"ListAggregates": func() error {
			_, err := st.ListAggregates(nil)
			return err
		},
		"ListAggregatesPrefix": func() error {
			_, err := st.ListAggregates(aid("order"))
			return err
		},
		"Archive": func() error { return st.Archive(id) },
		"ConsumeArchive": func() error {
			return st.ConsumeArchive(ctx, handler)
		},
		"WaitReady": func() error { return st.WaitReady(ctx) },
		"Exec": func() error {
			_, err := ex.Exec(id, add("x"))
			return err
		},
		"ExecNoOp": func() error {
			_, err := ex.Exec(id, noop)
			return err
		},
		"SaveSnapshot": func() error { return ex.SaveSnapshot(id) },
	}
}

func testLifecycleClosed(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("order", "1")
	seed(t, st, id, items("a", 1)...)
	calls := closedCalls(st)
	// Warm the executor's cache, so Exec must still reach the store.
	ex := tallyExec(st)
	exec(t, ex, id, noop, "a0")

	require.NoError(t, st.Close())
	for name, call := range calls {
		require.ErrorIs(t, call(), timebox.ErrClosed, name)
	}
	_, err := ex.Exec(id, noop)
	require.ErrorIs(t, err, timebox.ErrClosed, "cached Exec")
	_, err = ex.Exec(id, add("x"))
	require.ErrorIs(t, err, timebox.ErrClosed, "cached Exec")
}

func testLifecycleDoubleClose(t *testing.T, s Suite) {
	st := s.store(t)
	require.NoError(t, st.Close())
	require.NoError(t, st.Close())
	_, err := st.GetEvents(aid("x"), 0)
	require.ErrorIs(t, err, timebox.ErrClosed)
}

// testLifecycleCloseDuringCalls closes a store while writers and readers
// are busy on it: each call either succeeds (or conflicts) or fails with
// ErrClosed, or, for a write in flight, ErrUnknownOutcome.
func testLifecycleCloseDuringCalls(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("busy")
	const workers, before = 4, 40
	var ops atomic.Int64
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		for ops.Load() < before {
			runtime.Gosched()
		}
		assert.NoError(t, st.Close())
	}()
	together(workers, func(w int) {
		for {
			var err error
			if w%2 == 0 {
				err = st.AppendEvents(id, ops.Load(), items("x", 1))
				if errors.Is(err, timebox.ErrVersionConflict) {
					err = nil
				}
				if errors.Is(err, timebox.ErrUnknownOutcome) {
					err = timebox.ErrClosed
				}
			} else {
				_, err = st.GetEvents(id, 0)
			}
			ops.Add(1)
			if err != nil {
				assert.ErrorIs(t, err, timebox.ErrClosed, "worker %d", w)
				return
			}
		}
	})
	<-closed
}
