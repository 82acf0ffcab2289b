package conformance

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
)

// busyCases check that an aggregate an Executor keeps in its cache is
// still snapshotted, after commits and off their latency path.
var busyCases = []testCase{
	{"SnapshotAfterCommits", testBusySnapshot},
	{"SnapshotFailureNotReturned", testBusySnapshotFailure},
	{"MinEvents", testBusyMinEvents},
	{"RaceExecutorsAndSaveSnapshot", testBusyRace},
}

// meter is a state of fixed size, so its events soon outweigh it.
type meter struct {
	N    int    `json:"n"`
	Last string `json:"last"`
}

var meterAppliers = timebox.Appliers[meter]{
	"inc": timebox.MakeApplier(func(c meter, _ *timebox.Event, v string) meter {
		return meter{N: c.N + 1, Last: v}
	}),
}

func inc(v string) timebox.Command[meter] {
	return func(_ meter, ag *timebox.Aggregator[meter]) error {
		return timebox.Raise(ag, "inc", v)
	}
}

// testBusySnapshot runs 1,001 commands through one Executor, which keeps
// the aggregate cached all along, and waits for a snapshot near the head.
func testBusySnapshot(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("meter", "1")
	ex := timebox.NewExecutor(st, func() meter { return meter{} }, meterAppliers)
	const commands = 1001
	for i := range commands {
		_, err := ex.Exec(id, inc(fmt.Sprintf("v%d", i)))
		require.NoError(t, err)
	}

	var snap meter
	var res *timebox.SnapshotResult
	deadline := time.Now().Add(waitTimeout)
	for {
		snap = meter{}
		var err error
		res, err = st.GetSnapshot(id, &snap)
		require.NoError(t, err)
		if res.NextSequence >= commands-100 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	require.GreaterOrEqual(t, res.NextSequence, int64(commands-100),
		"no snapshot near the head %d after waiting %v", commands, waitTimeout)
	n := int(res.NextSequence)
	require.Equal(t, meter{N: n, Last: fmt.Sprintf("v%d", n-1)}, snap)
	require.Len(t, res.AdditionalEvents, commands-n)

	got, err := timebox.NewExecutor(st, func() meter { return meter{} },
		meterAppliers).Exec(id, func(meter, *timebox.Aggregator[meter]) error {
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, commands, got.N)
}

// unsaveable cannot be marshalled, so every snapshot of it fails.
type unsaveable struct {
	N  int
	Ch chan int
}

func testBusySnapshotFailure(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("unsaveable", "1")
	ex := timebox.NewExecutor(st, func() unsaveable { return unsaveable{} },
		timebox.Appliers[unsaveable]{
			"inc": func(u unsaveable, _ *timebox.Event) unsaveable {
				u.N++
				return u
			},
		})
	for i := range 20 {
		got, err := ex.Exec(id, func(_ unsaveable, ag *timebox.Aggregator[unsaveable]) error {
			return timebox.Raise(ag, "inc", i)
		})
		require.NoError(t, err, "a failed background snapshot is not returned")
		require.Equal(t, i+1, got.N)
	}
	require.Len(t, events(t, st, id), 20)
}

// awaitSnapshot polls id's snapshot until its sequence is at least seq,
// for up to waitTimeout, and returns it.
func awaitSnapshot(
	t *testing.T, st *timebox.Store, id timebox.AggregateID, seq int64, target any,
) *timebox.SnapshotResult {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		res, err := st.GetSnapshot(id, target)
		require.NoError(t, err)
		if res.NextSequence >= seq || time.Now().After(deadline) {
			require.GreaterOrEqual(t, res.NextSequence, seq,
				"no snapshot at %d or later after waiting %v", seq, waitTimeout)
			return res
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// snapshotCounter counts the snapshots a Store reports stored, and those
// it reports skipped.
type snapshotCounter struct {
	timebox.NopHooks
	stored, skipped atomic.Int64
}

func (c *snapshotCounter) SnapshotSaved(_ context.Context, info timebox.SnapshotInfo) {
	switch {
	case info.Skipped:
		c.skipped.Add(1)
	case info.Err == nil:
		c.stored.Add(1)
	}
}

// testBusyMinEvents: a tiny state with events that outweigh it at once
// gets a background snapshot per SnapshotMinEvents events, not per
// command, and the last state of the burst is snapshotted to within
// SnapshotMinEvents-1 events of the head.
func testBusyMinEvents(t *testing.T, s Suite) {
	const minEvents, commands = 10, 95
	hooks := &snapshotCounter{}
	st := s.store(t, timebox.Config{SnapshotMinEvents: minEvents, Hooks: hooks})
	id := aid("meter", "1")
	ex := timebox.NewExecutor(st, func() meter { return meter{} }, meterAppliers)
	big := strings.Repeat("x", 256)
	for i := range commands {
		_, err := ex.Exec(id, inc(fmt.Sprintf("v%d%s", i, big)))
		require.NoError(t, err)
	}
	var snap meter
	res := awaitSnapshot(t, st, id, commands-minEvents+1, &snap)
	n := int(res.NextSequence)
	require.Equal(t, n, snap.N)
	require.Len(t, res.AdditionalEvents, commands-n)
	// Each stored background snapshot covers at least minEvents events.
	require.LessOrEqual(t, hooks.stored.Load(), int64(commands/minEvents))
	t.Logf("%d background snapshots stored, %d skipped (a commit came first)",
		hooks.stored.Load(), hooks.skipped.Load())
}

// testBusyRace runs several Executors (standing for several processes) on
// one aggregate, each with callers racing, every commit due for a
// background snapshot, while another Executor saves snapshots explicitly.
// No acknowledged event may be lost or duplicated, sequences are gapless,
// every snapshot equals the log up to its sequence, and the last commit's
// snapshot reaches the head.
func testBusyRace(t *testing.T, s Suite) {
	st := s.store(t, timebox.Config{
		SnapshotRatio: 1e-9, SnapshotMinEvents: 1, MaxRetries: 64,
	})
	id := aid("tally", "race")
	const executors, workers, commands = 3, 3, 12
	execs := make([]*timebox.Executor[tally], executors)
	for i := range execs {
		execs[i] = tallyExec(st)
	}
	l := newLedger()
	done := make(chan struct{})
	snapped := snapshotUntil(t, st, id, done)
	together(executors*workers, func(i int) {
		ex := execs[i/workers]
		worker := fmt.Sprintf("e%d-w%d", i/workers, i%workers)
		for c := range commands {
			p := fmt.Sprintf("%s-c%d", worker, c)
			_, err := ex.Exec(id, add(p))
			l.record(worker, []string{p}, err)
		}
	})
	close(done)
	snapped()

	l.requireErrors(t, true)
	evs := l.awaitAcked(t, st, id)
	l.requireLog(t, evs)
	var snap tally
	res := awaitSnapshot(t, st, id, int64(len(evs)), &snap)
	require.EqualValues(t, len(evs), res.NextSequence)
	checkSnapshotPrefix(t, st, id)
	state, err := tallyExec(st).Exec(id, noop)
	require.NoError(t, err)
	require.Equal(t, logItems(t, st, id), quoted(state.Items...))
}
