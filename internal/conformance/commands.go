package conformance

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
)

var commandCases = []testCase{
	{"RepeatRunsOnce", testCommandRepeat},
	{"RepeatAcrossExecutors", testCommandAcrossExecutors},
	{"SurvivesTrimmingSnapshot", testCommandSnapshot},
	{"WindowBounded", testCommandWindow},
	{"PerAggregate", testCommandPerAggregate},
	{"FailedCommandRunsAgain", testCommandFailed},
	{"RaceRepeats", testCommandRace},
}

// counted returns a command raising payload, and the number of its runs.
func counted(payload string) (timebox.Command[counter], *atomic.Int32) {
	var runs atomic.Int32
	return func(_ counter, ag *timebox.Aggregator[counter]) error {
		runs.Add(1)
		return timebox.Raise(ag, "race", payload)
	}, &runs
}

func withCommand(id string) context.Context {
	return timebox.WithCommandID(context.Background(), id)
}

func testCommandRepeat(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("cmd", "repeat")
	var acted atomic.Int32
	ex := timebox.NewExecutor(st, newCounter, counterAppliers,
		func(counter, []*timebox.Event) { acted.Add(1) })
	cmd, runs := counted("a")
	first, err := ex.ExecContext(withCommand("c-1"), id, cmd)
	require.NoError(t, err)
	again, err := ex.ExecContext(withCommand("c-1"), id, cmd)
	require.NoError(t, err)
	require.EqualValues(t, 1, runs.Load())
	require.EqualValues(t, 1, acted.Load(), "success actions ran again")
	require.Equal(t, first, again)
	got := events(t, st, id)
	require.Len(t, got, 1)
	require.Equal(t, "c-1", got[0].Metadata[timebox.CommandIDKey])

	// Without the ID, or with another, the command runs.
	_, err = ex.Exec(id, cmd)
	require.NoError(t, err)
	_, err = ex.ExecContext(withCommand("c-2"), id, cmd)
	require.NoError(t, err)
	require.EqualValues(t, 3, runs.Load())
}

func testCommandAcrossExecutors(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("cmd", "across")
	one := timebox.NewExecutor(st, newCounter, counterAppliers)
	two := timebox.NewExecutor(st, newCounter, counterAppliers)
	cmd, runs := counted("a")
	_, err := two.Exec(id, cmd) // two caches the aggregate before c-1
	require.NoError(t, err)
	_, err = one.ExecContext(withCommand("c-1"), id, cmd)
	require.NoError(t, err)
	// A fresh executor learns of c-1 from the load: no run.
	res, err := timebox.NewExecutor(st, newCounter, counterAppliers).
		ExecContext(withCommand("c-1"), id, cmd)
	require.NoError(t, err)
	require.Equal(t, 2, res.Count)
	require.EqualValues(t, 2, runs.Load())
	// two, whose cached state predates c-1, learns of it from the
	// conflict that state meets: what it ran on the old state is dropped.
	res, err = two.ExecContext(withCommand("c-1"), id, cmd)
	require.NoError(t, err)
	require.Equal(t, 2, res.Count)
	require.Len(t, events(t, st, id), 2)
}

func testCommandSnapshot(t *testing.T, s Suite) {
	st := s.store(t, timebox.Config{TrimEvents: true})
	id := aid("cmd", "snapshot")
	ex := timebox.NewExecutor(st, newCounter, counterAppliers)
	cmd, runs := counted("a")
	for i := range 3 {
		_, err := ex.ExecContext(withCommand(fmt.Sprint("c-", i)), id, cmd)
		require.NoError(t, err)
	}
	require.NoError(t, ex.SaveSnapshot(id))
	require.Empty(t, events(t, st, id), "events not trimmed")
	fresh := timebox.NewExecutor(st, newCounter, counterAppliers)
	res, err := fresh.ExecContext(withCommand("c-1"), id, cmd)
	require.NoError(t, err)
	require.Equal(t, 3, res.Count)
	require.EqualValues(t, 3, runs.Load())

	// The state reads back as before from a snapshot with commands.
	var c counter
	_, err = st.GetSnapshot(id, &c)
	require.NoError(t, err)
}

func testCommandWindow(t *testing.T, s Suite) {
	st := s.store(t, timebox.Config{CommandWindow: 4})
	id := aid("cmd", "window")
	cmd, runs := counted("a")
	for i := range 6 {
		ex := timebox.NewExecutor(st, newCounter, counterAppliers)
		_, err := ex.ExecContext(withCommand(fmt.Sprint("c-", i)), id, cmd)
		require.NoError(t, err)
	}
	ex := timebox.NewExecutor(st, newCounter, counterAppliers)
	_, err := ex.ExecContext(withCommand("c-5"), id, cmd)
	require.NoError(t, err)
	_, err = ex.ExecContext(withCommand("c-2"), id, cmd)
	require.NoError(t, err)
	require.EqualValues(t, 6, runs.Load())
	_, err = ex.ExecContext(withCommand("c-1"), id, cmd) // out of the window
	require.NoError(t, err)
	require.EqualValues(t, 7, runs.Load())
}

func testCommandPerAggregate(t *testing.T, s Suite) {
	st := s.store(t)
	ex := timebox.NewExecutor(st, newCounter, counterAppliers)
	cmd, runs := counted("a")
	for _, id := range []timebox.AggregateID{aid("cmd", "x"), aid("cmd", "y")} {
		_, err := ex.ExecContext(withCommand("c-1"), id, cmd)
		require.NoError(t, err)
	}
	require.EqualValues(t, 2, runs.Load())
}

func testCommandFailed(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("cmd", "failed")
	ex := timebox.NewExecutor(st, newCounter, counterAppliers)
	boom := errors.New("boom")
	var runs atomic.Int32
	cmd := func(_ counter, ag *timebox.Aggregator[counter]) error {
		if runs.Add(1) == 1 {
			return boom
		}
		return timebox.Raise(ag, "race", "a")
	}
	_, err := ex.ExecContext(withCommand("c-1"), id, cmd)
	require.ErrorIs(t, err, boom)
	_, err = ex.ExecContext(withCommand("c-1"), id, cmd)
	require.NoError(t, err)
	require.EqualValues(t, 2, runs.Load())
	require.Len(t, events(t, st, id), 1)
}

// testCommandRace sends every command twice at once, through executors
// on separate stores where the backend shares data (standing for a client
// retrying against another process): each command runs to one event.
func testCommandRace(t *testing.T, s Suite) {
	sts := []*timebox.Store{s.store(t)}
	if s.Shared != nil {
		sts = s.Shared(t, timebox.Config{}, 3)
	}
	id := aid("cmd", "race")
	exs := make([]*timebox.Executor[counter], 3)
	for i := range exs {
		exs[i] = timebox.NewExecutor(sts[i%len(sts)], newCounter, counterAppliers)
	}
	const commands = 30
	var wg sync.WaitGroup
	for c := range commands {
		for r := range 2 {
			wg.Go(func() {
				ex := exs[(c+r)%len(exs)]
				_, err := ex.ExecContext(withCommand(fmt.Sprint("c-", c)), id,
					raceCommand(fmt.Sprint("c-", c)))
				if !errors.Is(err, timebox.ErrMaxRetriesExceeded) {
					require.NoError(t, err)
				}
			})
		}
	}
	wg.Wait()
	got := events(t, sts[0], id)
	requireSequences(t, 0, got)
	seen := map[string]bool{}
	for _, e := range got {
		p := payload(t, e)
		require.False(t, seen[p], "%s ran twice", p)
		seen[p] = true
		require.Equal(t, p, e.Metadata[timebox.CommandIDKey])
	}
}
