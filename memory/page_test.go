package memory_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/memory"
)

// TestPagesWhileAggregatesMove pages through a status, a label value and a
// prefix, again and again, while writers move other aggregates in and out
// of that status and label (each move re-enters at a later time), and
// create and archive aggregates under the prefix. In every pass the
// entries come in strictly ascending page order (so none repeats), and
// every aggregate that stayed put is returned exactly once.
func TestPagesWhileAggregatesMove(t *testing.T) {
	const stayers, movers, writers, moves = 150, 50, 5, 150
	var clock atomic.Int64
	base := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	event := func(status string) []*timebox.Event {
		at := base.Add(time.Duration(clock.Add(1)))
		return []*timebox.Event{{Timestamp: at, Type: timebox.EventType(status), Data: json.RawMessage(`{}`)}}
	}
	s, err := memory.NewPersistence().NewStore(timebox.Config{
		Indexer: func(evs []*timebox.Event) []*timebox.Index {
			st := string(evs[len(evs)-1].Type)
			return []*timebox.Index{{Status: &st, Labels: map[string]string{"tier": st}}}
		},
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })

	// Stayers and movers interleave in key order and in entry time.
	stay := map[string]bool{}
	all := map[string]bool{}
	moverIDs := make([]timebox.AggregateID, movers)
	for i := range stayers + movers {
		id := timebox.NewAggregateID("m", timebox.ID(fmt.Sprintf("%04d", i)))
		require.NoError(t, s.AppendEvents(id, 0, event("open")))
		all[id.String()] = true
		if i%4 == 3 {
			moverIDs[i/4] = id
		} else {
			stay[id.String()] = true
		}
	}
	require.Len(t, stay, stayers)

	// Writer w owns the movers whose index is w modulo writers.
	done := make(chan struct{})
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			errs <- write(s, moverIDs, w, writers, moves, event)
		})
	}
	go func() {
		wg.Wait()
		close(done)
	}()
	ctx := context.Background()
	for pass := 0; ; pass++ {
		writing := true
		select {
		case <-done:
			writing = false
		default:
		}
		checkStatusPass(t, ctx, s, stay)
		checkIDPass(t, stay, func(after timebox.Cursor) (timebox.IDPage, error) {
			return s.ListAggregatesByLabelPage(ctx, "tier", "open", after, 7)
		})
		// No aggregate from before is archived: all are listed once.
		checkIDPass(t, all, func(after timebox.Cursor) (timebox.IDPage, error) {
			return s.ListAggregatesPage(ctx, timebox.NewAggregateID("m"), after, 7)
		})
		if !writing {
			t.Logf("%d passes", pass+1)
			break
		}
	}
	for range writers {
		require.NoError(t, <-errs)
	}
}

// write makes moves moves among writer w's movers, alternately to
// "closed" and back to "open", and with each creates an aggregate under
// ["m"] between the others in key order, archiving every other one.
func write(
	s *timebox.Store, movers []timebox.AggregateID, w, writers, moves int,
	event func(status string) []*timebox.Event,
) error {
	own := len(movers) / writers
	for i := range moves {
		m := i % own
		id := movers[w+m*writers]
		to := []string{"closed", "open"}[i/own%2]
		if err := s.AppendEvents(id, int64(1+i/own), event(to)); err != nil {
			return err
		}
		tmp := timebox.NewAggregateID("m", timebox.ID(fmt.Sprintf("%04d-w%d", i, w)))
		if err := s.AppendEvents(tmp, 0, event("open")); err != nil {
			return err
		}
		if i%2 == 0 {
			if err := s.Archive(tmp); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkStatusPass(t *testing.T, ctx context.Context, s *timebox.Store, want map[string]bool) {
	t.Helper()
	seen := map[string]int{}
	var last *timebox.StatusEntry
	for after := timebox.Cursor(""); ; {
		page, err := s.ListAggregatesByStatusPage(ctx, "open", after, 7)
		require.NoError(t, err)
		for _, e := range page.Entries {
			if last != nil {
				c := last.Timestamp.Compare(e.Timestamp)
				require.True(t, c < 0 || c == 0 && last.ID.CompareKey(e.ID) < 0,
					"%v %q then %v %q", last.Timestamp, last.ID, e.Timestamp, e.ID)
			}
			last = &e
			seen[e.ID.String()]++
		}
		if after = page.Next; after == "" {
			break
		}
	}
	for id := range want {
		require.Equal(t, 1, seen[id], "%s", id)
	}
}

func checkIDPass(
	t *testing.T, want map[string]bool,
	next func(after timebox.Cursor) (timebox.IDPage, error),
) {
	t.Helper()
	seen := map[string]int{}
	var last timebox.AggregateID
	for after := timebox.Cursor(""); ; {
		page, err := next(after)
		require.NoError(t, err)
		for _, id := range page.IDs {
			if last != nil {
				require.Negative(t, last.CompareKey(id), "%q then %q", last, id)
			}
			last = id
			seen[id.String()]++
		}
		if after = page.Next; after == "" {
			break
		}
	}
	for id := range want {
		require.Equal(t, 1, seen[id], "%s", id)
	}
}
