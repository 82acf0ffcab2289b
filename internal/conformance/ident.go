package conformance

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
)

func identCases(archiving bool) []testCase {
	res := []testCase{
		{"IDsGenerated", testIdentGenerated},
		{"CallerIDKept", testIdentCallerID},
		{"MetadataRoundTrip", testIdentMetadata},
		{"ContextMetadata", testIdentContextMetadata},
		{"ExecutorMetadata", testIdentExecutorMetadata},
		{"ConflictCarriesIdentity", testIdentConflict},
		{"ResendIsIdempotent", testIdentResend},
		{"DifferentAppendConflicts", testIdentDifferent},
		{"RaceResend", testIdentRaceResend},
	}
	if archiving {
		res = append(res, testCase{"ArchiveCarriesIdentity", testIdentArchive})
	}
	return res
}

// oddMetadata holds keys and values a backend must hand back exactly.
var oddMetadata = timebox.Metadata{
	"correlation": "c-1", "": "", "nul\x00key": "nul\x00value",
	"bytes": "\xff\xfe", "json": `{"a": [1, 2.50]}`, "ünï©ode": "日本",
}

// oddEventIDs are caller-chosen event IDs a backend must hand back exactly.
var oddEventIDs = []string{"my-id", "ü\x00\xff", "'; DROP TABLE x; --"}

func testIdentGenerated(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("ident", "gen")
	batch := items("a", 5)
	seed(t, st, id, batch...)
	require.NoError(t, st.AppendEvents(id, 5, items("b", 3)))
	for _, e := range batch {
		assert.Empty(t, e.ID, "caller's event changed")
	}
	got := events(t, st, id)
	require.Len(t, got, 8)
	seen := map[string]bool{}
	for i, e := range got {
		require.Len(t, e.ID, 36, "event %d ID %q", i, e.ID)
		require.Equal(t, byte('7'), e.ID[14], "event %d ID %q: not UUIDv7", i, e.ID)
		require.False(t, seen[e.ID], "event %d ID %q repeated", i, e.ID)
		seen[e.ID] = true
		if i > 0 {
			require.Less(t, got[i-1].ID, e.ID, "event %d ID not increasing", i)
		}
	}
}

func testIdentCallerID(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("ident", "caller")
	batch := items("a", len(oddEventIDs)+1)
	for i, eid := range oddEventIDs {
		batch[i].ID = eid
	}
	seed(t, st, id, batch...)
	got := events(t, st, id)
	require.Len(t, got, len(batch))
	for i, eid := range oddEventIDs {
		require.Equal(t, eid, got[i].ID, "event %d", i)
	}
	require.NotEmpty(t, got[len(oddEventIDs)].ID)
}

func testIdentMetadata(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("ident", "metadata")
	batch := items("a", 3)
	batch[0].Metadata = oddMetadata
	batch[2].Metadata = timebox.Metadata{"k": "v"}
	seed(t, st, id, batch...)
	check := func(evs []*timebox.Event) {
		t.Helper()
		require.Len(t, evs, 3)
		require.Equal(t, oddMetadata, evs[0].Metadata)
		require.Empty(t, evs[1].Metadata)
		require.Equal(t, timebox.Metadata{"k": "v"}, evs[2].Metadata)
	}
	check(events(t, st, id))
	var v any
	res, err := st.GetSnapshot(id, &v)
	require.NoError(t, err)
	check(res.AdditionalEvents)
}

func testIdentContextMetadata(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("ident", "ctx")
	ctx := timebox.WithMetadata(context.Background(),
		timebox.Metadata{"correlation": "c-1", "actor": "ctx"})
	ctx = timebox.WithMetadata(ctx, timebox.Metadata{"causation": "e-0"})
	batch := items("a", 2)
	batch[1].Metadata = timebox.Metadata{"actor": "own", "extra": "x"}
	require.NoError(t, st.AppendEventsContext(ctx, id, 0, batch))
	assert.Equal(t, timebox.Metadata{"actor": "own", "extra": "x"},
		batch[1].Metadata, "caller's metadata changed")
	got := events(t, st, id)
	require.Len(t, got, 2)
	require.Equal(t, timebox.Metadata{
		"correlation": "c-1", "actor": "ctx", "causation": "e-0",
	}, got[0].Metadata)
	require.Equal(t, timebox.Metadata{
		"correlation": "c-1", "actor": "own", "causation": "e-0", "extra": "x",
	}, got[1].Metadata)
}

func testIdentExecutorMetadata(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("ident", "exec")
	var acted []*timebox.Event
	ex := timebox.NewExecutor(st, newCounter, counterAppliers,
		func(_ counter, evs []*timebox.Event) { acted = evs })
	md := timebox.Metadata{"correlation": "req-7"}
	ctx := timebox.WithMetadata(context.Background(), md)
	_, err := ex.ExecContext(ctx, id, func(_ counter, ag *timebox.Aggregator[counter]) error {
		if err := timebox.Raise(ag, "race", "a"); err != nil {
			return err
		}
		return timebox.Raise(ag, "race", "b")
	})
	require.NoError(t, err)
	got := events(t, st, id)
	require.Len(t, got, 2)
	require.Len(t, acted, 2)
	for i, e := range got {
		require.Equal(t, md, e.Metadata, "event %d", i)
		require.NotEmpty(t, e.ID, "event %d", i)
		require.Equal(t, e.ID, acted[i].ID, "success action's event %d", i)
	}
	require.NotEqual(t, got[0].ID, got[1].ID)
}

func testIdentConflict(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("ident", "conflict")
	batch := items("a", 2)
	batch[1].ID, batch[1].Metadata = "mine", oddMetadata
	seed(t, st, id, batch...)
	stored := events(t, st, id)
	vc := conflict(t, st.AppendEvents(id, 0, items("b", 1)))
	require.Len(t, vc.NewEvents, 2)
	for i, e := range vc.NewEvents {
		require.Equal(t, stored[i].ID, e.ID, "event %d", i)
	}
	require.Equal(t, oddMetadata, vc.NewEvents[1].Metadata)
}

// withIDs gives evs the IDs <prefix>0, <prefix>1, ... and returns them.
func withIDs(prefix string, evs []*timebox.Event) []*timebox.Event {
	for i, e := range evs {
		e.ID = fmt.Sprintf("%s%d", prefix, i)
	}
	return evs
}

func testIdentResend(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("ident", "resend")
	first := withIDs("first-", items("a", 3))
	seed(t, st, id, first...)
	// The same batch again at the same sequence is already there.
	require.NoError(t, st.AppendEvents(id, 0, first))
	require.Len(t, events(t, st, id), 3)

	second := withIDs("second-", items("b", 2))
	require.NoError(t, st.AppendEvents(id, 3, second))
	require.NoError(t, st.AppendEvents(id, 3, second))
	// Still idempotent once later events follow it.
	require.NoError(t, st.AppendEvents(id, 5, items("c", 1)))
	require.NoError(t, st.AppendEvents(id, 0, first))
	require.NoError(t, st.AppendEvents(id, 3, second))
	got := events(t, st, id)
	require.Len(t, got, 6)
	requireStored(t, id, 0, slices.Concat(first, second, items("c", 1)), got)
}

func testIdentDifferent(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("ident", "different")
	first := withIDs("first-", items("a", 2))
	seed(t, st, id, first...)
	for _, batch := range [][]*timebox.Event{
		items("a", 2),                        // no IDs: new ones
		withIDs("other-", items("a", 2)),     // other IDs
		withIDs("first-", items("a", 3)),     // longer than what is stored
		{first[1], first[0]},                 // same IDs, other order
		withIDs("first-", items("a", 2))[1:], // right IDs, wrong sequence
	} {
		vc := conflict(t, st.AppendEvents(id, 0, batch))
		require.EqualValues(t, 2, vc.ActualSequence)
	}
	// An event already stored at its sequence is there: no conflict.
	require.NoError(t, st.AppendEvents(id, 1, first[1:]))
	require.Len(t, events(t, st, id), 2)
}

func testIdentArchive(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("ident", "archive")
	batch := items("a", 2)
	batch[0].ID, batch[0].Metadata = "mine", oddMetadata
	seed(t, st, id, batch...)
	stored := events(t, st, id)
	require.NoError(t, st.Archive(id))
	rec := consume(t, st)
	require.Len(t, rec.Events, 2)
	require.Equal(t, "mine", rec.Events[0].ID)
	require.Equal(t, oddMetadata, rec.Events[0].Metadata)
	require.Equal(t, stored[1].ID, rec.Events[1].ID)
	require.NotEmpty(t, rec.Events[1].ID)
}

// testIdentRaceResend has writers race batches with IDs of their own at
// the head, each sending every batch twice at once and, once acknowledged,
// once more at the sequence it landed at. Both sends of a batch agree;
// each acknowledged batch is stored once, at its sequence; the log is
// gapless and holds nothing else.
func testIdentRaceResend(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("ident", "race")
	const workers, appends = 6, 10
	var mu sync.Mutex
	acked := map[int64][]string{} // sequence -> IDs of the batch there
	together(workers, func(w int) {
		var head int64
		for c := range appends {
			batch := withIDs(fmt.Sprintf("w%d-c%d-", w, c),
				items(fmt.Sprintf("w%d-c%d-", w, c), 1+(w+c)%3))
			for {
				runtime.Gosched()
				var errs [2]error
				var wg sync.WaitGroup
				for i := range errs {
					wg.Go(func() { errs[i] = st.AppendEvents(id, head, batch) })
				}
				wg.Wait()
				if errs[0] == nil && errs[1] == nil {
					require.NoError(t, st.AppendEvents(id, head, batch))
					ids := make([]string, len(batch))
					for i, e := range batch {
						ids[i] = e.ID
					}
					mu.Lock()
					acked[head] = ids
					mu.Unlock()
					head += int64(len(batch))
					break
				}
				var vc0, vc1 *timebox.VersionConflictError
				if !assert.True(t, errors.As(errs[0], &vc0) && errors.As(errs[1], &vc1),
					"sends of one batch disagree: %v, %v", errs[0], errs[1]) {
					return
				}
				checkConflict(t, head, vc0)
				head = vc0.ActualSequence
			}
		}
	})
	got := events(t, st, id)
	requireSequences(t, 0, got)
	seen := map[string]bool{}
	for _, e := range got {
		require.False(t, seen[e.ID], "event %q stored twice", e.ID)
		seen[e.ID] = true
	}
	total := 0
	for seq, ids := range acked {
		for i, eid := range ids {
			require.Equal(t, eid, got[seq+int64(i)].ID, "batch at %d", seq)
		}
		total += len(ids)
	}
	require.Len(t, got, total)
	require.Len(t, acked, workers*appends)
}
