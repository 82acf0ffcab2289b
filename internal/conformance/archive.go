package conformance

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
)

func archiveCases(enabled bool) []testCase {
	if !enabled {
		return []testCase{{"Disabled", testArchiveDisabled}}
	}
	return []testCase{
		{"RecordContents", testArchiveRecord},
		{"LiveRecordsRemoved", testArchiveRemoves},
		{"NoSnapshot", testArchiveNoSnapshot},
		{"UnknownAggregate", testArchiveUnknown},
		{"NilHandler", testArchiveNilHandler},
		{"BlocksUntilDeadline", testArchiveDeadline},
		{"HandlerErrorKeepsRecord", testArchiveHandlerError},
		{"HandlerPanicKeepsRecord", testArchiveHandlerPanic},
		{"SeveralRecords", testArchiveSeveral},
		{"Trimmed", testArchiveTrimmed},
		{"SnapshotOnly", testArchiveSnapshotOnly},
		{"CloseWakesConsumer", testArchiveClose},
	}
}

var errHandler = errors.New("handler failed")

// emptyWait is how long a case waits to see that no record is pending.
const emptyWait = 200 * time.Millisecond

// consume returns the next archive record, failing if none arrives.
func consume(t *testing.T, st *timebox.Store) *timebox.ArchiveRecord {
	t.Helper()
	ctx, cancel := contextWithTimeout(waitTimeout)
	defer cancel()
	var rec *timebox.ArchiveRecord
	err := st.ConsumeArchive(ctx, func(ctx context.Context, r *timebox.ArchiveRecord) error {
		assert.Nil(t, rec, "handler called twice")
		rec = r
		return nil
	})
	require.NoError(t, err)
	require.NotNil(t, rec)
	return rec
}

// requireNoRecord checks that no archive record is pending.
func requireNoRecord(t *testing.T, st *timebox.Store) {
	t.Helper()
	ctx, cancel := contextWithTimeout(emptyWait)
	defer cancel()
	err := st.ConsumeArchive(ctx, func(_ context.Context, r *timebox.ArchiveRecord) error {
		t.Errorf("unexpected archive record for %q", r.AggregateID)
		return nil
	})
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func testArchiveDisabled(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("order", "1")
	seed(t, st, id, items("a", 2)...)
	require.ErrorIs(t, st.Archive(id), timebox.ErrArchivingDisabled)
	require.ErrorIs(t, st.Archive(aid("unknown")), timebox.ErrArchivingDisabled)
	ctx, cancel := contextWithTimeout(waitTimeout)
	defer cancel()
	called := false
	err := st.ConsumeArchive(ctx, func(context.Context, *timebox.ArchiveRecord) error {
		called = true
		return nil
	})
	require.ErrorIs(t, err, timebox.ErrArchivingDisabled)
	require.ErrorIs(t, st.ConsumeArchive(ctx, nil), timebox.ErrArchivingDisabled)
	require.False(t, called)
	require.Len(t, events(t, st, id), 2)
}

func testArchiveRecord(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("order", "ü:{1}")
	evs := []*timebox.Event{
		ev("a", `{"b" :  1 ,"a":[ 1,2 ]}`), ev("b", `"héllo ✓"`),
		{Timestamp: oddTimes[2], Type: "c", Data: []byte(`null`)},
	}
	seed(t, st, id, evs...)
	state := map[string]any{"z": 1, "a": "é <&>"}
	require.NoError(t, st.PutSnapshot(id, state, 2))
	seed(t, st, aid("order", "other"), items("x", 1)...)

	require.NoError(t, st.Archive(id))
	rec := consume(t, st)
	require.Equal(t, id, rec.AggregateID)
	require.Equal(t, string(mustJSON(state)), string(rec.SnapshotData))
	require.EqualValues(t, 2, rec.SnapshotSequence)
	requireStored(t, id, 0, evs, rec.Events)
	requireNoRecord(t, st)
}

func testArchiveRemoves(t *testing.T, s Suite) {
	r := &recorder{}
	st := s.store(t, timebox.Config{Indexer: r.index})
	id, other := aid("order", "1"), aid("order", "2")
	spec := indexSpec{
		Status: strp("open"), Labels: map[string]string{"region": "eu"},
	}
	seed(t, st, id, idx(1, spec), ev("x", "1"))
	seed(t, st, other, idx(2, spec))
	require.NoError(t, st.PutSnapshot(id, snapState{Name: "s"}, 1))

	require.NoError(t, st.Archive(id))
	require.Empty(t, events(t, st, id))
	init := snapState{Name: "untouched"}
	got, res := getSnapshot(t, st, id, init)
	require.Equal(t, init, got)
	require.EqualValues(t, 0, res.NextSequence)
	require.Empty(t, res.AdditionalEvents)
	requireStatus(t, st, id, "")
	requireEntries(t, byStatus(t, st, "open"),
		[]timebox.AggregateID{other}, []time.Time{at(2)})
	require.Equal(t, []timebox.AggregateID{other}, byLabel(t, st, "region", "eu"))
	require.Equal(t, []timebox.AggregateID{other}, listAggregates(t, st, nil))

	require.NoError(t, st.Archive(other))
	require.Empty(t, byStatus(t, st, "open"))
	require.Empty(t, labelValues(t, st, "region"))
	require.Empty(t, listAggregates(t, st, nil))
	require.Len(t, events(t, st, id), 0)
}

func testArchiveNoSnapshot(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("order", "1")
	evs := items("a", 3)
	seed(t, st, id, evs...)
	require.NoError(t, st.Archive(id))
	rec := consume(t, st)
	require.Equal(t, id, rec.AggregateID)
	require.Empty(t, rec.SnapshotData)
	require.EqualValues(t, 0, rec.SnapshotSequence)
	requireStored(t, id, 0, evs, rec.Events)
}

func testArchiveUnknown(t *testing.T, s Suite) {
	st := s.store(t)
	seed(t, st, aid("order", "1"), items("a", 1)...)
	require.NoError(t, st.Archive(aid("order", "2")))
	require.NoError(t, st.Archive(aid("order")))
	requireNoRecord(t, st)
	require.Len(t, events(t, st, aid("order", "1")), 1)
}

func testArchiveNilHandler(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("order", "1")
	seed(t, st, id, items("a", 1)...)
	require.NoError(t, st.Archive(id))
	ctx, cancel := contextWithTimeout(waitTimeout)
	defer cancel()
	require.ErrorIs(t, st.ConsumeArchive(ctx, nil), timebox.ErrArchiveHandlerMissing)
	require.Equal(t, id, consume(t, st).AggregateID)
}

func testArchiveDeadline(t *testing.T, s Suite) {
	st := s.store(t)
	requireNoRecord(t, st)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := st.ConsumeArchive(ctx, func(context.Context, *timebox.ArchiveRecord) error {
		t.Error("handler called without a record")
		return nil
	})
	require.ErrorIs(t, err, context.Canceled)
}

func testArchiveHandlerError(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("order", "1")
	evs := items("a", 2)
	seed(t, st, id, evs...)
	require.NoError(t, st.PutSnapshot(id, snapState{Name: "s"}, 1))
	require.NoError(t, st.Archive(id))

	ctx, cancel := contextWithTimeout(waitTimeout)
	defer cancel()
	var first *timebox.ArchiveRecord
	err := st.ConsumeArchive(ctx, func(_ context.Context, r *timebox.ArchiveRecord) error {
		first = r
		return errHandler
	})
	require.ErrorIs(t, err, errHandler)
	require.NotNil(t, first)

	again := consume(t, st)
	require.Equal(t, id, again.AggregateID)
	require.Equal(t, string(first.SnapshotData), string(again.SnapshotData))
	require.Equal(t, string(mustJSON(snapState{Name: "s"})), string(again.SnapshotData))
	require.EqualValues(t, 1, again.SnapshotSequence)
	requireStored(t, id, 0, evs, again.Events)
	requireNoRecord(t, st)
}

// testArchiveHandlerPanic: a handler's panic reaches ConsumeArchive's
// caller, and the record is kept for the next call, at once, not after a
// lease.
func testArchiveHandlerPanic(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("order", "p")
	seed(t, st, id, items("a", 1)...)
	require.NoError(t, st.Archive(id))
	ctx, cancel := contextWithTimeout(waitTimeout)
	defer cancel()
	require.PanicsWithValue(t, "archive handler bug", func() {
		_ = st.ConsumeArchive(ctx, func(context.Context, *timebox.ArchiveRecord) error {
			panic("archive handler bug")
		})
	})
	start := time.Now()
	again := consume(t, st)
	require.Equal(t, id, again.AggregateID)
	// The default leases (redis MinIdle, postgres and raft ArchiveLease)
	// are 30s: a record left to its lease would come back much later.
	require.Less(t, time.Since(start), 10*time.Second, "the record waited for its lease")
	requireNoRecord(t, st)
}

func testArchiveSeveral(t *testing.T, s Suite) {
	st := s.store(t)
	ids := []timebox.AggregateID{aid("a:b"), aid("a", "b"), aid("c")}
	for i, id := range ids {
		seed(t, st, id, items(id.String(), i+1)...)
	}
	for _, id := range ids {
		require.NoError(t, st.Archive(id))
	}
	got := map[string]int{}
	for range ids {
		rec := consume(t, st)
		got[string(mustJSON(rec.AggregateID))] = len(rec.Events)
	}
	require.Equal(t, map[string]int{
		`["a:b"]`: 1, `["a","b"]`: 2, `["c"]`: 3,
	}, got)
	requireNoRecord(t, st)
	require.Empty(t, listAggregates(t, st, nil))
}

func testArchiveTrimmed(t *testing.T, s Suite) {
	st := s.store(t, timebox.Config{TrimEvents: true})
	id := aid("order", "1")
	evs := items("a", 5)
	seed(t, st, id, evs...)
	require.NoError(t, st.PutSnapshot(id, snapState{Count: 3}, 3))
	require.NoError(t, st.Archive(id))
	rec := consume(t, st)
	require.Equal(t, string(mustJSON(snapState{Count: 3})), string(rec.SnapshotData))
	require.EqualValues(t, 3, rec.SnapshotSequence)
	requireStored(t, id, 3, evs[3:], rec.Events)
	require.Empty(t, listAggregates(t, st, nil))
}

func testArchiveSnapshotOnly(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("order", "1")
	require.NoError(t, st.PutSnapshot(id, snapState{Name: "s"}, 2))
	require.NoError(t, st.Archive(id))
	rec := consume(t, st)
	require.Equal(t, id, rec.AggregateID)
	require.Equal(t, string(mustJSON(snapState{Name: "s"})), string(rec.SnapshotData))
	require.EqualValues(t, 2, rec.SnapshotSequence)
	require.Empty(t, rec.Events)
	require.Empty(t, listAggregates(t, st, nil))
}

// testArchiveClose checks that Close ends a ConsumeArchive waiting for a
// record, with an error matching ErrClosed.
func testArchiveClose(t *testing.T, s Suite) {
	st := s.store(t)
	ctx, cancel := contextWithTimeout(waitTimeout)
	defer cancel()
	res := make(chan error, 1)
	waiting := make(chan struct{})
	go func() {
		close(waiting)
		res <- st.ConsumeArchive(ctx, func(context.Context, *timebox.ArchiveRecord) error {
			return nil
		})
	}()
	<-waiting
	time.Sleep(emptyWait) // most likely blocked by now; either way must pass
	require.NoError(t, st.Close())
	err := <-res
	require.ErrorIs(t, err, timebox.ErrClosed)
}

// ArchiveAcrossProcesses checks archiving with many consumers in many
// processes: stores are stores on one backend and namespace, each
// standing for a process. It archives records aggregates (two events
// each) and consumes them with consumers goroutines per store, all at
// once, and requires that every record be handled at least once, with all
// its events; that no record be handled by two consumers at the same time;
// and that none be left afterwards.
//
// crashed, if not nil, is one more process on the same namespace whose
// consumer dies holding a record: it takes the first record, and its
// handler closes crashed (so the record is never acknowledged) before any
// other consumer starts. That record must be redelivered to the others
// once its lease or idle time runs out, which should be short for
// crashed.
func ArchiveAcrossProcesses(
	t *testing.T, stores []*timebox.Store, crashed *timebox.Store,
	records, consumers int,
) {
	t.Helper()
	require.NotEmpty(t, stores)
	for i := range records {
		id := aid("archived", fmt.Sprint(i))
		seed(t, stores[0], id, items(fmt.Sprint(i), 2)...)
		require.NoError(t, stores[i%len(stores)].Archive(id))
	}
	var lost string
	if crashed != nil {
		ctx, cancel := contextWithTimeout(waitTimeout)
		err := crashed.ConsumeArchive(ctx, func(_ context.Context, r *timebox.ArchiveRecord) error {
			lost = r.AggregateID.String()
			return crashed.Close()
		})
		cancel()
		require.ErrorIs(t, err, timebox.ErrClosed,
			"a consumer whose process closed under it acknowledged its record")
		require.NotEmpty(t, lost)
	}

	var mu sync.Mutex
	active := map[string]bool{}
	handled := map[string]int{}
	handler := func(_ context.Context, r *timebox.ArchiveRecord) error {
		key := r.AggregateID.String()
		mu.Lock()
		if active[key] {
			t.Errorf("record of %s handled by two consumers at once", key)
		}
		active[key] = true
		mu.Unlock()
		assert.Len(t, r.Events, 2, key)
		time.Sleep(time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		active[key] = false
		handled[key]++
		return nil
	}
	done := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(handled) == records
	}
	deadline := time.Now().Add(2 * waitTimeout)
	var wg sync.WaitGroup
	for _, st := range stores {
		for range consumers {
			wg.Go(func() {
				for !done() && time.Now().Before(deadline) {
					ctx, cancel := contextWithTimeout(emptyWait)
					err := st.ConsumeArchive(ctx, handler)
					cancel()
					if err != nil && !errors.Is(err, context.DeadlineExceeded) {
						t.Errorf("consume: %v", err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	mu.Lock()
	require.Len(t, handled, records,
		"records handled within %s (crashed consumer's: %q)", 2*waitTimeout, lost)
	if lost != "" {
		require.Positive(t, handled[lost], "the crashed consumer's record was not redelivered")
	}
	mu.Unlock()
	for _, st := range stores {
		requireNoRecord(t, st)
	}
}
