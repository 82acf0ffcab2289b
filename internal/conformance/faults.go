package conformance

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/faultproxy"
)

// Faulty returns n fresh stores that share one namespace (standing for n
// processes) and reach the server through px. Each store has cfg over the
// defaults and is closed, and the namespace emptied, when t ends.
type Faulty func(
	t *testing.T, px *faultproxy.Proxy, cfg timebox.Config, n int,
) []*timebox.Store

// faultCases run when the Suite has a Faulty factory.
func faultCases(s Suite) []testCase {
	if s.Faulty == nil || s.Server == nil {
		return nil
	}
	return []testCase{
		{"LostReplyResent", testFaultLostReply},
		{"LostReplyRetriesOff", testFaultRetriesOff},
		{"ExecLostReplyRunsOnce", testFaultExecOnce},
		{"CutsNeverReachCaller", testFaultCuts},
	}
}

// faulty returns n stores through a new proxy to the server, and the proxy.
func (s Suite) faulty(
	t *testing.T, cfg timebox.Config, n int,
) ([]*timebox.Store, *faultproxy.Proxy) {
	t.Helper()
	px := faultproxy.New(t, s.Server(t))
	sts := s.Faulty(t, px, cfg, n)
	require.Len(t, sts, n)
	for _, st := range sts {
		ctx, cancel := contextWithTimeout(waitTimeout)
		require.NoError(t, st.WaitReady(ctx))
		cancel()
	}
	return sts, px
}

// testFaultLostReply swallows the reply to an append the server ran: the
// Store sends it again, learns from the conflict that it landed, and
// reports success; the events are stored once.
func testFaultLostReply(t *testing.T, s Suite) {
	sts, px := s.faulty(t, timebox.Config{}, 1)
	st := sts[0]
	id := aid("fault", "lost")
	first, second := items("a", 2), items("b", 3)
	seed(t, st, id, first...)
	// A second append prepares what the backend prepares per connection
	// (Faulty's stores use one connection each), so that the request
	// dropped below is the append itself.
	require.NoError(t, st.AppendEvents(id, 2, items("c", 1)))
	px.DropNextReply()
	require.NoError(t, st.AppendEvents(id, 3, second))
	require.EqualValues(t, 1, px.Dropped())
	requireStored(t, id, 0, slices.Concat(first, items("c", 1), second), events(t, st, id))
}

// testFaultRetriesOff checks that with retries turned off a lost reply is
// reported as ErrUnknownOutcome, and the append did land.
func testFaultRetriesOff(t *testing.T, s Suite) {
	sts, px := s.faulty(t, timebox.Config{RetryTimeout: -1}, 1)
	st := sts[0]
	id := aid("fault", "off")
	seed(t, st, id, items("a", 1)...)
	// As in testFaultLostReply, the dropped request is the append itself.
	require.NoError(t, st.AppendEvents(id, 1, items("b", 1)))
	px.DropNextReply()
	err := st.AppendEvents(id, 2, items("c", 1))
	require.ErrorIs(t, err, timebox.ErrUnknownOutcome)
	require.Len(t, events(t, st, id), 3)
}

// testFaultExecOnce loses the reply to an Exec's append: Exec succeeds,
// the command ran once and its event is stored once.
func testFaultExecOnce(t *testing.T, s Suite) {
	sts, px := s.faulty(t, timebox.Config{}, 1)
	st := sts[0]
	id := aid("fault", "exec")
	ex := timebox.NewExecutor(st, newCounter, counterAppliers)
	var runs atomic.Int32
	cmd := func(_ counter, ag *timebox.Aggregator[counter]) error {
		runs.Add(1)
		return timebox.Raise(ag, "race", fmt.Sprint(runs.Load()))
	}
	for range 2 {
		_, err := ex.Exec(id, cmd)
		require.NoError(t, err)
	}
	px.DropNextReply()
	res, err := ex.Exec(id, cmd)
	require.NoError(t, err)
	require.EqualValues(t, 3, runs.Load())
	require.EqualValues(t, 1, px.Dropped())
	require.Len(t, events(t, st, id), 3)
	require.Equal(t, 3, res.Count)
}

// Cut test parameters. Every executor runs at least cutsPerExecutor
// commands, a few milliseconds apart, and goes on until the proxy has cut
// the connections cutsRounds times, so that every backend, however fast,
// meets the faults. cutsGoal is issue 11's bound on an Exec under cuts; it
// is logged, not enforced: each Exec has waitTimeout, and the Store
// retries for as long (Config.RetryTimeout; its default, 10 s, ran out
// twice in 2026-12-01 CI runs beside other test sessions), because on a
// loaded machine a PostgreSQL connect alone can take longer than the
// 100-300 ms between two cuts (see RELIABILITY.md).
const (
	cutsPerExecutor = 20
	cutsRounds      = 10
	cutsGoal        = 5 * time.Second
)

// testFaultCuts runs executors on separate stores (standing for separate
// processes) on a few hot aggregates while every connection is cut, again
// and again, and each time replies are swallowed (their connection cut)
// for 50-300 ms. A cut comes 100-300 ms after the last one healed, and
// not before some Exec has been acknowledged since: on a loaded machine a
// PostgreSQL connect can take longer than that gap, and cuts that no
// attempt can fit between would test the machine, not the retries. No
// Exec may fail, and each aggregate's log holds exactly the acknowledged
// commands, once each. The slowest Exec, and how many took over cutsGoal,
// are logged.
func testFaultCuts(t *testing.T, s Suite) {
	const procs, aggs = 4, 2
	sts, px := s.faulty(t, timebox.Config{RetryTimeout: waitTimeout}, procs)

	stop := make(chan struct{})
	var cuts atomic.Int32
	var acks atomic.Int64 // Execs acknowledged so far
	var chaos sync.WaitGroup
	chaos.Go(func() {
		for healed := acks.Load(); ; healed = acks.Load() {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(100+rand.IntN(200)) * time.Millisecond):
			}
			for acks.Load() == healed {
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
			}
			px.DropReplies(true)
			px.CutAll()
			time.Sleep(time.Duration(50+rand.IntN(250)) * time.Millisecond)
			px.DropReplies(false)
			cuts.Add(1)
		}
	})

	var mu sync.Mutex
	acked := map[string]string{} // payload -> aggregate
	var errs []error
	var slowest time.Duration
	overGoal := 0
	var wg sync.WaitGroup
	for p, st := range sts {
		ex := timebox.NewExecutor(st, newCounter, counterAppliers)
		for a := range aggs {
			wg.Go(func() {
				agg := fmt.Sprint(a)
				for c := 0; c < cutsPerExecutor || cuts.Load() < cutsRounds; c++ {
					// Commands a few ms apart: hot aggregates, not a
					// saturated one (Contention measures that).
					time.Sleep(time.Duration(rand.IntN(10)) * time.Millisecond)
					payload := fmt.Sprintf("p%d-a%d-c%d", p, a, c)
					ctx, cancel := contextWithTimeout(waitTimeout)
					start := time.Now()
					_, err := ex.ExecContext(ctx, aid("fault", "cuts", agg), raceCommand(payload))
					took := time.Since(start)
					cancel()
					mu.Lock()
					slowest = max(slowest, took)
					if took > cutsGoal {
						overGoal++
					}
					if err != nil {
						errs = append(errs, fmt.Errorf("%s: %w", payload, err))
					} else {
						acked[payload] = agg
						acks.Add(1)
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	close(stop)
	chaos.Wait()
	px.DropReplies(false)

	t.Logf("%d Execs under %d cuts, slowest %v, %d over %v",
		len(acked)+len(errs), cuts.Load(), slowest, overGoal, cutsGoal)
	for _, err := range errs {
		assert.NoError(t, err)
	}
	check := sts[0]
	total := 0
	for a := range aggs {
		agg := fmt.Sprint(a)
		got := events(t, check, aid("fault", "cuts", agg))
		requireSequences(t, 0, got)
		seen := map[string]bool{}
		for _, e := range got {
			p := payload(t, e)
			require.False(t, seen[p], "%s stored twice", p)
			seen[p] = true
			require.Equal(t, agg, acked[p], "%s stored but not acknowledged here", p)
		}
		total += len(got)
	}
	require.Equal(t, len(acked), total)
}
