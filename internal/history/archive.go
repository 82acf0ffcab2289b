package history

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kode4food/timebox"
)

// ArchiveLoad archives aggregates through stores while a fault runs and
// consumes them with one consumer per store, to check that every archived
// record is handled at least once and none is left behind.
type ArchiveLoad struct {
	// Aggregates is the number of aggregates seeded, then archived one at
	// a time, evenly over Span.
	Aggregates int
	// Span is how long the archiving takes.
	Span time.Duration
	// Drain is how long the final check waits for a record still pending:
	// longer than a dead consumer's lease (or idle time) lasts.
	Drain time.Duration
	// Settle bounds the wait, after the last archive, for every record to
	// be handled.
	Settle time.Duration
}

// ArchiveReport sums up a RunArchive.
type ArchiveReport struct {
	// Archived counts the aggregates whose Archive was acknowledged (every
	// one is retried until it is); Handled the distinct records handled;
	// Deliveries every handler call.
	Archived, Handled, Deliveries int
	// Drained counts the deliveries of the final drain: records whose
	// consumer died or lost its acknowledgement, redelivered.
	Drained int
	// Malformed counts records without the seeded events.
	Malformed int
	// Errors holds a few distinct errors met, for diagnosis.
	Errors []string
}

// String describes r on one line.
func (r ArchiveReport) String() string {
	return fmt.Sprintf("archive: archived %d, handled %d (%d deliveries, "+
		"%d in the final drain), malformed %d; errors %v",
		r.Archived, r.Handled, r.Deliveries, r.Drained, r.Malformed, r.Errors)
}

// Clean says every archived record was handled, intact.
func (r ArchiveReport) Clean() bool {
	return r.Archived == r.Handled && r.Malformed == 0
}

// archiveEvents is the number of events seeded per archived aggregate.
const archiveEvents = 2

// RunArchive runs l on stores: it seeds the aggregates through stores[0],
// then archives them in turn through each store (retrying each until
// acknowledged) while every store runs a consumer, waits up to Settle for
// all to be handled, stops the consumers, and drains: consumes through
// stores[0] until no record comes for Drain, so none is left pending. It
// returns an error only when seeding fails or ctx ends.
func RunArchive(
	ctx context.Context, stores []*timebox.Store, l ArchiveLoad,
) (ArchiveReport, error) {
	var rep ArchiveReport
	if len(stores) == 0 {
		return rep, ErrNoStores
	}
	nonce := NewRecorder().nonce
	ids := make([]timebox.AggregateID, l.Aggregates)
	want := map[string]bool{}
	for i := range ids {
		ids[i] = timebox.NewAggregateID("archive", timebox.ID(nonce), timebox.ID(fmt.Sprint(i)))
		want[ids[i].String()] = true
		evs := make([]*timebox.Event, archiveEvents)
		for j := range evs {
			evs[j] = &timebox.Event{Timestamp: time.Now(), Type: "seeded", Data: []byte(`{}`)}
		}
		if err := seedArchived(ctx, stores[0], ids[i], evs); err != nil {
			return rep, fmt.Errorf("seed %s: %w", ids[i], err)
		}
	}

	var mu sync.Mutex
	handled := map[string]bool{}
	seen := map[string]bool{}
	note := func(err error) {
		if msg := err.Error(); !seen[msg] && len(rep.Errors) < maxErrorSamples {
			seen[msg] = true
			rep.Errors = append(rep.Errors, msg)
		}
	}
	handler := func(_ context.Context, r *timebox.ArchiveRecord) error {
		mu.Lock()
		defer mu.Unlock()
		key := r.AggregateID.String()
		rep.Deliveries++
		if !want[key] {
			return nil // another run's record
		}
		if len(r.Events) != archiveEvents && !handled[key] {
			rep.Malformed++
		}
		handled[key] = true
		return nil
	}
	consume := func(st *timebox.Store, wait time.Duration) bool {
		cctx, cancel := context.WithTimeout(ctx, wait)
		defer cancel()
		err := st.ConsumeArchive(cctx, handler)
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			mu.Lock()
			note(err)
			mu.Unlock()
		}
		return err == nil
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, st := range stores {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if !consume(st, 200*time.Millisecond) {
					_ = Sleep(ctx, 10*time.Millisecond)
				}
			}
		})
	}
	for i, id := range ids {
		if err := Sleep(ctx, l.Span/time.Duration(max(1, len(ids)))); err != nil {
			break
		}
		for ctx.Err() == nil {
			err := stores[i%len(stores)].ArchiveContext(ctx, id)
			if err == nil {
				rep.Archived++
				break
			}
			mu.Lock()
			note(err)
			mu.Unlock()
			_ = Sleep(ctx, 10*time.Millisecond)
		}
	}
	end := time.Now().Add(l.Settle)
	for time.Now().Before(end) && ctx.Err() == nil {
		mu.Lock()
		n := len(handled)
		mu.Unlock()
		if n == rep.Archived {
			break
		}
		_ = Sleep(ctx, 10*time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	before := rep.Deliveries
	for consume(stores[0], l.Drain) {
	}
	mu.Lock()
	defer mu.Unlock()
	rep.Drained = rep.Deliveries - before
	rep.Handled = len(handled)
	return rep, nil
}

// seedArchived appends evs to id at 0, retrying until they are stored: the
// fault may already be running.
func seedArchived(
	ctx context.Context, st *timebox.Store, id timebox.AggregateID,
	evs []*timebox.Event,
) error {
	for {
		err := st.AppendEventsContext(ctx, id, 0, evs)
		if err == nil {
			return nil
		}
		if stored, rerr := st.GetEventsContext(ctx, id, 0); rerr == nil &&
			len(stored) == len(evs) {
			return nil
		}
		if err := Sleep(ctx, 10*time.Millisecond); err != nil {
			return err
		}
	}
}
