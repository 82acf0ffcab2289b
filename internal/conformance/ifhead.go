package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
)

// ifHeadCases check that Executor snapshots never resurrect or corrupt an
// aggregate: they are stored only while the aggregate's head is the
// sequence the state was folded to (SnapshotRequest.IfHead).
func ifHeadCases(s Suite) []testCase {
	res := []testCase{
		{"SaveSnapshotLoadsFresh", testSaveSnapshotFresh},
		{"SaveSnapshotWithoutHistory", testSaveSnapshotNoHistory},
		{"SaveSnapshotRacesAppends", testSaveSnapshotRace},
		{"BackendIfHead", testBackendIfHead},
		{"BackendIfHeadTrim", testBackendIfHeadTrim},
	}
	if s.Archiving {
		res = append(res,
			testCase{"SaveSnapshotAfterArchive", testSaveSnapshotAfterArchive},
			testCase{"BackendIfHeadArchived", testBackendIfHeadArchived},
			testCase{"SnapshotsRaceArchive", testSnapshotRaceArchive},
		)
	}
	return res
}

// backend returns a fresh backend, ready, or skips t when the suite has no
// NewBackend.
func (s Suite) backend(t *testing.T) timebox.Backend {
	t.Helper()
	if s.NewBackend == nil {
		t.Skip("Suite.NewBackend not set")
	}
	b := s.NewBackend(t)
	ctx, cancel := contextWithTimeout(waitTimeout)
	defer cancel()
	select {
	case <-b.Ready():
	case <-ctx.Done():
		t.Fatalf("backend not ready after %v", waitTimeout)
	}
	return b
}

// stamp returns evs stamped as an append to id at seq stores them.
func stamp(id timebox.AggregateID, seq int64, evs []*timebox.Event) []*timebox.Event {
	res := make([]*timebox.Event, len(evs))
	for i, e := range evs {
		c := *e
		c.Sequence, c.AggregateID = seq+int64(i), id
		c.Timestamp = c.Timestamp.UTC()
		res[i] = &c
	}
	return res
}

// saveIfHead asks b for an IfHead snapshot and requires it to be stored
// (nil), or, unless stored, skipped (ErrSnapshotSkipped).
func saveIfHead(
	t *testing.T, b timebox.Backend, id timebox.AggregateID, seq int64, data string,
	trim, stored bool,
) {
	t.Helper()
	err := b.SaveSnapshot(context.Background(), timebox.SnapshotRequest{
		ID: id, Data: json.RawMessage(data), Sequence: seq, Trim: trim, IfHead: true,
	})
	if stored {
		require.NoError(t, err, "snapshot at %d", seq)
		return
	}
	require.ErrorIs(t, err, timebox.ErrSnapshotSkipped, "snapshot at %d", seq)
}

// requireSnapshot checks the backend's snapshot of id and that its head
// is head (an append at head succeeds, checked with an empty batch).
func requireSnapshot(
	t *testing.T, b timebox.Backend, id timebox.AggregateID, data string, seq, head int64,
) {
	t.Helper()
	rec, err := b.LoadSnapshot(context.Background(), id)
	require.NoError(t, err)
	require.Equal(t, data, string(rec.Data))
	require.Equal(t, seq, rec.Sequence)
	require.NoError(t, b.Append(context.Background(), timebox.AppendRequest{
		ID: id, ExpectedSequence: head,
	}), "head at %d", head)
}

func testBackendIfHead(t *testing.T, s Suite) {
	b := s.backend(t)
	ctx := context.Background()
	id := aid("order", "1")

	saveIfHead(t, b, id, 0, `"new"`, false, false)
	requireSnapshot(t, b, id, "", 0, 0)
	ids, err := b.ListAggregates(ctx, nil)
	require.NoError(t, err)
	require.Empty(t, ids, "an unknown aggregate is not created")

	require.NoError(t, b.Append(ctx, timebox.AppendRequest{
		ID: id, Events: stamp(id, 0, items("a", 3)),
	}))
	saveIfHead(t, b, id, 2, `"behind"`, false, false)
	saveIfHead(t, b, id, 5, `"ahead"`, false, false)
	requireSnapshot(t, b, id, "", 0, 3)

	saveIfHead(t, b, id, 3, `"at3"`, false, true)
	requireSnapshot(t, b, id, `"at3"`, 3, 3)
	saveIfHead(t, b, id, 3, `"again"`, false, true)
	requireSnapshot(t, b, id, `"again"`, 3, 3)

	// A seeded snapshot beyond the head moves it; IfHead then matches it.
	require.NoError(t, b.SaveSnapshot(ctx, timebox.SnapshotRequest{
		ID: id, Data: json.RawMessage(`"seeded"`), Sequence: 7,
	}))
	saveIfHead(t, b, id, 3, `"old"`, false, false)
	requireSnapshot(t, b, id, `"seeded"`, 7, 7)
	saveIfHead(t, b, id, 7, `"at7"`, false, true)
	requireSnapshot(t, b, id, `"at7"`, 7, 7)
	evs, err := b.LoadEvents(ctx, id, 0)
	require.NoError(t, err)
	require.Len(t, evs, 3)
}

func testBackendIfHeadTrim(t *testing.T, s Suite) {
	b := s.backend(t)
	ctx := context.Background()
	id := aid("order", "1")
	require.NoError(t, b.Append(ctx, timebox.AppendRequest{
		ID: id, Events: stamp(id, 0, items("a", 4)),
	}))
	saveIfHead(t, b, id, 2, `"stale"`, true, false)
	evs, err := b.LoadEvents(ctx, id, 0)
	require.NoError(t, err)
	require.Len(t, evs, 4, "a refused snapshot trims nothing")

	saveIfHead(t, b, id, 4, `"at4"`, true, true)
	requireSnapshot(t, b, id, `"at4"`, 4, 4)
	evs, err = b.LoadEvents(ctx, id, 0)
	require.NoError(t, err)
	require.Empty(t, evs)
}

func testBackendIfHeadArchived(t *testing.T, s Suite) {
	b := s.backend(t)
	ctx := context.Background()
	id := aid("order", "1")
	require.NoError(t, b.Append(ctx, timebox.AppendRequest{
		ID: id, Events: stamp(id, 0, items("a", 3)),
	}))
	require.NoError(t, b.(timebox.Archiver).Archive(ctx, id))
	saveIfHead(t, b, id, 3, `"ghost"`, false, false)
	saveIfHead(t, b, id, 0, `"ghost"`, false, false)
	requireSnapshot(t, b, id, "", 0, 0)
	ids, err := b.ListAggregates(ctx, nil)
	require.NoError(t, err)
	require.Empty(t, ids, "an archived aggregate stays gone")
}

// testSaveSnapshotAfterArchive is the scenario: a cached state of
// a history that was archived must not be snapshotted onto the new one.
func testSaveSnapshotAfterArchive(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("tally", "1")
	ex := tallyExec(st)
	for _, v := range []string{"a", "b", "c"} {
		_, err := ex.Exec(id, add(v))
		require.NoError(t, err)
	}
	require.NoError(t, st.Archive(id))
	require.NoError(t, st.AppendEvents(id, 0, []*timebox.Event{ev("item", `"z"`)}))
	require.NoError(t, ex.SaveSnapshot(id))

	snap, res := snapshotTally(t, st, id)
	require.EqualValues(t, 1, res.NextSequence)
	require.Equal(t, []string{"z"}, snap.Items)
	exec(t, tallyExec(st), id, noop, "z")
	exec(t, ex, id, add("y"), "z", "y")
	exec(t, tallyExec(st), id, noop, "z", "y")
}

func testSaveSnapshotFresh(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("tally", "1")
	ex := tallyExec(st)
	exec(t, ex, id, add("a", "b", "c"), "a", "b", "c")
	require.NoError(t, st.AppendEvents(id, 3, items("x", 2)))
	require.NoError(t, ex.SaveSnapshot(id))

	want := []string{"a", "b", "c", "x0", "x1"}
	snap, res := snapshotTally(t, st, id)
	require.EqualValues(t, 5, res.NextSequence)
	require.Equal(t, want, snap.Items)
	exec(t, tallyExec(st), id, noop, want...)
}

func testSaveSnapshotNoHistory(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("tally", "1")
	require.NoError(t, tallyExec(st).SaveSnapshot(id))
	_, res := snapshotTally(t, st, id)
	require.Zero(t, res.SnapshotSize)
	ids, err := st.ListAggregates(nil)
	require.NoError(t, err)
	require.Empty(t, ids)
}

// snapshotUntil saves snapshots of the tally id through an Executor of its
// own, each checked against the log (checkSnapshotPrefix), until done is
// closed. The function it returns waits for the last one and returns how
// many were taken.
func snapshotUntil(
	t *testing.T, st *timebox.Store, id timebox.AggregateID, done <-chan struct{},
) func() int {
	snaps := 0
	var wg sync.WaitGroup
	wg.Go(func() {
		ex := tallyExec(st)
		for {
			select {
			case <-done:
				return
			default:
			}
			if !assert.NoError(t, ex.SaveSnapshot(id)) {
				return
			}
			snaps++
			checkSnapshotPrefix(t, st, id)
		}
	})
	return func() int {
		wg.Wait()
		return snaps
	}
}

// testSaveSnapshotRace snapshots an aggregate through one Executor while
// another Executor's callers append to it. Every snapshot seen must equal the log up
// to its sequence, and no acknowledged event may be lost.
func testSaveSnapshotRace(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("tally", "1")
	const writers, each = 4, 15
	var wg sync.WaitGroup
	done := make(chan struct{})
	writer := tallyExec(st) // its callers queue, so they never run out of retries
	for w := range writers {
		wg.Go(func() {
			ex := writer
			for i := range each {
				_, err := ex.Exec(id, add(fmt.Sprintf("w%d-%d", w, i)))
				if !assert.NoError(t, err) {
					return
				}
			}
		})
	}
	snapped := snapshotUntil(t, st, id, done)
	wg.Wait()
	close(done)
	t.Logf("%d snapshots taken", snapped())

	logged := logItems(t, st, id)
	require.Len(t, logged, writers*each)
	checkSnapshotPrefix(t, st, id)
	state, err := tallyExec(st).Exec(id, noop)
	require.NoError(t, err)
	require.Equal(t, logged, quoted(state.Items...))
}

// checkSnapshotPrefix checks that id's snapshot holds exactly the items of
// the events stored below its sequence.
func checkSnapshotPrefix(t *testing.T, st *timebox.Store, id timebox.AggregateID) {
	t.Helper()
	snap, res := snapshotTally(t, st, id)
	logged := logItems(t, st, id)
	n := int(res.NextSequence)
	if !assert.LessOrEqual(t, n, len(logged), "snapshot beyond the log") {
		return
	}
	assert.Equal(t, logged[:n], quoted(snap.Items...),
		"snapshot at %d is not the log's prefix", n)
}

// testSnapshotRaceArchive archives and recreates one aggregate over and
// over (generation g holds g events, all "g<g>", so each head belongs to
// one generation) while Executors snapshot it, explicitly and on load. A
// snapshot of one generation must never be stored in another: every state
// rebuilt from snapshot and events holds one generation's items only.
func testSnapshotRaceArchive(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("tally", "1")
	const generations = 25
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(done)
		for g := 1; g <= generations; g++ {
			if !assert.NoError(t, st.Archive(id)) {
				return
			}
			evs := make([]*timebox.Event, g)
			for i := range evs {
				evs[i] = ev("item", string(quote(fmt.Sprintf("g%d", g))))
			}
			if !assert.NoError(t, st.AppendEvents(id, 0, evs)) {
				return
			}
		}
	})
	for range 2 {
		wg.Go(func() {
			ex := tallyExec(st)
			for {
				select {
				case <-done:
					return
				default:
				}
				assert.NoError(t, ex.SaveSnapshot(id))
				_, err := tallyExec(st).Exec(id, noop) // snapshots on load
				if err != nil {
					assert.ErrorIs(t, err, timebox.ErrVersionConflict)
				}
				checkOneGeneration(t, st, id)
			}
		})
	}
	wg.Wait()
	checkOneGeneration(t, st, id)
	exec(t, tallyExec(st), id, noop, repeat(fmt.Sprintf("g%d", generations), generations)...)
}

func checkOneGeneration(t *testing.T, st *timebox.Store, id timebox.AggregateID) {
	t.Helper()
	var snap tally
	res, err := st.GetSnapshot(id, &snap)
	if !assert.NoError(t, err) {
		return
	}
	state := snap.Items
	for _, e := range res.AdditionalEvents {
		var v string
		if assert.NoError(t, json.Unmarshal(e.Data, &v)) {
			state = append(state, v)
		}
	}
	if len(state) == 0 {
		return
	}
	assert.Equal(t, repeat(state[0], len(state)), state,
		"snapshot at %d mixes generations", res.NextSequence)
}

func repeat(v string, n int) []string {
	res := make([]string, n)
	for i := range res {
		res[i] = v
	}
	return res
}
