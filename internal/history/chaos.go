package history

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
)

// ChaosEnv is the environment variable that, set to "1", makes NewPlan
// return the long plan (`make chaos`).
const ChaosEnv = "TIMEBOX_CHAOS"

// Plan is how long a chaos scenario runs, how long its fault lasts and
// how often each worker acts.
type Plan struct {
	// Long is set for the long plan.
	Long bool
	// Duration is the Workload's Duration; the fault starts at a third.
	Duration time.Duration
	// Window is how long the fault lasts, for scenarios that repeat it.
	Window time.Duration
	// Pace is the Workload's Pace.
	Pace time.Duration
}

// NewPlan returns the short plan (about 1.5 s per scenario, so `make
// test` keeps the scenarios honest), or the long one (75 s, of which 25 s
// of fault) when ChaosEnv is "1".
func NewPlan() Plan {
	if os.Getenv(ChaosEnv) == "1" {
		return Plan{
			Long: true, Duration: 75 * time.Second, Window: 25 * time.Second,
			Pace: 2 * time.Millisecond,
		}
	}
	return Plan{
		Duration: 1500 * time.Millisecond, Window: 400 * time.Millisecond,
		Pace: time.Millisecond,
	}
}

// Pick returns short or long by the plan's length.
func (p Plan) Pick(short, long time.Duration) time.Duration {
	if p.Long {
		return long
	}
	return short
}

// RunChaos runs two workloads on stores at once, one through Executors
// and one through raw AppendEvents, sharing one run of fault (started a
// third of the way in, see Once), then requires each report to be clean
// (see Require) and fault to have returned nil. Throughout, a durable
// consumer runs on the same stores (a FeedLoad, see FeedRun), stopped and
// restarted before and after the fault and abandoned during it; it is
// drained once the workloads are over and its recording must pass
// CheckFeed against the final feed and the workloads' acknowledged
// events (see RequireFeed). Each report's RELIABILITY.md row
// (Markdown(backend, scenario+" (Exec|append)")), and the consumer's
// (FeedReport.Markdown(backend, scenario)), is printed on a line of its
// own under -v, so `grep '^| '` collects it, and logged otherwise. The
// stores' backend must have a feed. It returns the consumer's report.
func RunChaos(
	t testing.TB, plan Plan, backend, scenario string,
	stores []*timebox.Store, fault func(context.Context) error,
	opts ...ChaosOption,
) FeedReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(
		context.Background(), 3*plan.Duration+DefaultFeedDrain+time.Minute,
	)
	defer cancel()
	feed := StartFeed(ctx, FeedLoad{Stores: stores, FirstRestart: plan.Duration / 6})
	fault = Once(feed.Fault(fault))
	kinds := []struct {
		name string
		exec bool
	}{{"Exec", true}, {"append", false}}
	reps := make([]Report, len(kinds))
	errs := make([]error, len(kinds))
	var wg sync.WaitGroup
	var o chaosOptions
	for _, opt := range opts {
		opt(&o)
	}
	var arep ArchiveReport
	var aerr error
	if o.archive != nil {
		o.archive.Span, o.archive.Aggregates = plan.Duration, 20
		if plan.Long {
			o.archive.Aggregates = 300
		}
		wg.Go(func() { arep, aerr = RunArchive(ctx, stores, *o.archive) })
	}
	for i, k := range kinds {
		wg.Go(func() {
			reps[i], errs[i] = Run(ctx, Workload{
				Stores:   stores,
				UseExec:  k.exec,
				Duration: plan.Duration,
				Pace:     plan.Pace,
				Fault:    fault,
				FaultAt:  plan.Duration / 3,
			})
		})
	}
	wg.Wait()
	frec, fevs, ferr := feed.Finish()
	var acked []string
	for i, k := range kinds {
		require.NoError(t, errs[i], k.name)
		printRow(t, reps[i].Markdown(backend, scenario+" ("+k.name+")"))
		acked = append(acked, AckedKeys(reps[i].Ops)...)
	}
	frep := CheckFeed(frec, fevs, acked)
	if ferr == nil {
		printRow(t, frep.Markdown(backend, scenario))
	}
	for i := range kinds {
		require.NoError(t, reps[i].FaultErr)
		Require(t, reps[i])
	}
	require.NoError(t, ferr, "consumer")
	RequireFeed(t, frep)
	if o.archive != nil {
		require.NoError(t, aerr, "archive load")
		t.Log(arep.String())
		require.True(t, arep.Clean(), arep.String())
	}
	return frep
}

// printRow prints a RELIABILITY.md row at the start of a line under -v,
// unlike t.Log, and logs it otherwise.
func printRow(t testing.TB, row string) {
	if testing.Verbose() {
		fmt.Println(row)
	} else {
		t.Log(row)
	}
}

// ChaosOption adds to what RunChaos runs.
type ChaosOption func(*chaosOptions)

type chaosOptions struct {
	archive *ArchiveLoad
}

// WithArchive makes RunChaos also run an ArchiveLoad through the same
// stores and fault (see RunArchive): a few dozen aggregates (a few
// hundred in the long plan) archived over the run, a consumer per store,
// and requires every archived record to be handled, intact, with none
// left after a drain of drain (longer than the backend's lease or idle
// time before it redelivers).
func WithArchive(drain time.Duration) ChaosOption {
	return func(o *chaosOptions) {
		o.archive = &ArchiveLoad{Drain: drain, Settle: DefaultRecoverWait}
	}
}

// Once returns a fault that runs f the first time it is called; every
// caller waits until f is done and gets its error, so concurrent
// workloads share one fault window.
func Once(f func(context.Context) error) func(context.Context) error {
	var o sync.Once
	var err error
	return func(ctx context.Context) error {
		o.Do(func() { err = f(ctx) })
		return err
	}
}

// Every calls f with the round number (0, 1, ...) every interval until
// window has passed, and stops early with ctx's error or f's.
func Every(
	ctx context.Context, window, interval time.Duration, f func(round int) error,
) error {
	end := time.Now().Add(window)
	for i := 0; time.Now().Before(end); i++ {
		if err := f(i); err != nil {
			return err
		}
		if err := Sleep(ctx, interval); err != nil {
			return err
		}
	}
	return nil
}

// Sleep waits d, or returns ctx's error if ctx ends first.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
