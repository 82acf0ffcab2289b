package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
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

// archiveOne seeds an aggregate of two events on st and archives it.
func archiveOne(t *testing.T, st *timebox.Store, name string) timebox.AggregateID {
	t.Helper()
	id := timebox.NewAggregateID("archived", timebox.ID(name))
	require.NoError(t, st.AppendEvents(id, 0, []*timebox.Event{
		{Type: "a", Data: []byte(`1`)}, {Type: "b", Data: []byte(`2`)},
	}))
	require.NoError(t, st.Archive(id))
	return id
}

// consumeWithin consumes one record with a deadline, returning its
// aggregate and the error.
func consumeWithin(
	st *timebox.Store, d time.Duration, h timebox.ArchiveHandler,
) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return st.ConsumeArchive(ctx, h)
}

// A handler that succeeds and then sees its context end still has its
// record acknowledged: it is not delivered again.
func TestArchiveAckSurvivesCancel(t *testing.T) {
	st := newStore(t, timebox.Config{})
	archiveOne(t, st, "cancel")
	ctx, cancel := context.WithCancel(context.Background())
	err := st.ConsumeArchive(ctx, func(context.Context, *timebox.ArchiveRecord) error {
		cancel()
		return nil
	})
	require.NoError(t, err)
	err = consumeWithin(st, 500*time.Millisecond, func(_ context.Context, r *timebox.ArchiveRecord) error {
		t.Errorf("record of %s delivered again", r.AggregateID)
		return nil
	})
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

// A consumer waiting on an empty archive is woken by an Archive in
// another process (LISTEN/NOTIFY), well before any lease or recheck.
func TestArchiveWakesWaitingConsumer(t *testing.T) {
	cfg := testConfig(t)
	stores := chaosStores(t, cfg, 2)
	got := make(chan timebox.AggregateID, 1)
	errs := make(chan error, 1)
	waiting := make(chan struct{})
	go func() {
		close(waiting)
		errs <- consumeWithin(stores[0], time.Minute, func(_ context.Context, r *timebox.ArchiveRecord) error {
			got <- r.AggregateID
			return nil
		})
	}()
	<-waiting
	time.Sleep(100 * time.Millisecond) // most likely waiting by now; either way must pass
	id := archiveOne(t, stores[1], "wake")
	require.NoError(t, <-errs)
	require.Equal(t, id, <-got)
}

// Writers append to one aggregate while it is archived: every
// acknowledged event is either in the archive record or, appended after
// the archive to the aggregate begun anew, in the live log, exactly once,
// and both run gapless from 0.
func TestArchiveRacesAppends(t *testing.T) {
	st := newStore(t, timebox.Config{})
	id := timebox.NewAggregateID("raced")
	const writers, each = 8, 15
	var mu sync.Mutex
	acked := map[string]bool{}
	var wg sync.WaitGroup
	archived := make(chan struct{})
	for w := range writers {
		wg.Go(func() {
			at := int64(0)
			for i := 0; i < each; {
				payload := fmt.Sprintf(`"%d-%d"`, w, i)
				err := st.AppendEvents(id, at, []*timebox.Event{
					{Type: "e", Data: []byte(payload)},
				})
				var vc *timebox.VersionConflictError
				switch {
				case err == nil:
					mu.Lock()
					acked[payload] = true
					mu.Unlock()
					at++
					i++
				case errors.As(err, &vc):
					at = vc.ActualSequence
				default:
					t.Errorf("append: %v", err)
					return
				}
				if w == 0 && i == each/2 {
					select {
					case <-archived:
					default:
						if err := st.Archive(id); err != nil {
							t.Errorf("archive: %v", err)
						}
						close(archived)
					}
				}
			}
		})
	}
	wg.Wait()
	var rec *timebox.ArchiveRecord
	require.NoError(t, consumeWithin(st, time.Minute, func(_ context.Context, r *timebox.ArchiveRecord) error {
		rec = r
		return nil
	}))
	live, err := st.GetEvents(id, 0)
	require.NoError(t, err)
	seen := map[string]int{}
	for _, log := range [][]*timebox.Event{rec.Events, live} {
		for i, ev := range log {
			require.EqualValues(t, i, ev.Sequence, "gap")
			seen[string(ev.Data)]++
		}
	}
	require.NotEmpty(t, rec.Events)
	require.NotEmpty(t, live)
	for p := range acked {
		require.Equal(t, 1, seen[p], "acknowledged event %s", p)
	}
	require.Len(t, seen, len(acked))
}
