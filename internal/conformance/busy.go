package conformance

import (
	"fmt"
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
