package conformance

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
)

var concurrencyCases = []testCase{
	{"ExecOneExecutor", testRaceOneExecutor},
	{"ExecSeveralExecutors", testRaceSeveralExecutors},
	{"ExecManyAggregates", testRaceManyAggregates},
	{"ExecSomeCommandsFail", testRaceCommandErrors},
	{"AppendEvents", testRaceAppend},
	{"ReadsSeeWholeBatches", testRaceReads},
}

// counter is the state RaceExec builds: how many events it has applied.
type counter struct {
	Count int `json:"count"`
}

var counterAppliers = timebox.Appliers[counter]{
	"race": func(s counter, _ *timebox.Event) counter {
		return counter{Count: s.Count + 1}
	},
}

func newCounter() counter { return counter{} }

// RaceExec runs workers goroutines per store, each doing commands Exec
// calls through one Executor per store, each raising one event with a
// unique payload on one aggregate shared by all. Then, on every store, it
// checks that the log holds exactly the acknowledged events, once each,
// with gapless sequences, each worker's in the order it made them, and
// that the Executors see as many events as the log holds. With one store
// no command may fail; with several, commands may fail with
// ErrMaxRetriesExceeded (nothing written) or ErrUnknownOutcome (written or
// not), and nothing else. A store that does not see another's writes at
// once is polled until it does.
func RaceExec(t *testing.T, stores []*timebox.Store, workers, commands int) {
	t.Helper()
	require.NotEmpty(t, stores)
	id := aid("race", rand.Text())
	l := newLedger()
	execs := make([]*timebox.Executor[counter], len(stores))
	for si, st := range stores {
		execs[si] = timebox.NewExecutor(st, newCounter, counterAppliers)
	}
	together(len(stores)*workers, func(i int) {
		ex := execs[i/workers]
		worker := fmt.Sprintf("s%d-w%d", i/workers, i%workers)
		for c := range commands {
			p := fmt.Sprintf("%s-c%d", worker, c)
			res, err := ex.Exec(id, raceCommand(p))
			l.recordExec(worker, p, res, err)
		}
	})

	l.requireErrors(t, len(stores) > 1)
	var first []string
	for si, st := range stores {
		evs := l.awaitAcked(t, st, id)
		payloads := l.requireLog(t, evs)
		if si == 0 {
			first = payloads
		} else {
			require.Equal(t, first, payloads, "store %d log differs from store 0", si)
		}
		for _, ex := range []*timebox.Executor[counter]{
			execs[si], timebox.NewExecutor(st, newCounter, counterAppliers),
		} {
			got, err := ex.Exec(id, func(counter, *timebox.Aggregator[counter]) error {
				return nil
			})
			require.NoError(t, err)
			require.Equal(t, len(evs), got.Count, "store %d state", si)
		}
	}
}

// raceCommand raises payload. It yields the processor first, so that on a
// fast backend the other workers queue up behind it.
// together runs fn(0), ..., fn(n-1) on n goroutines released at once,
// and waits for them all.
func together(n int, fn func(i int)) {
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			fn(i)
		})
	}
	close(start)
	wg.Wait()
}

func raceCommand(payload string) timebox.Command[counter] {
	return func(_ counter, ag *timebox.Aggregator[counter]) error {
		runtime.Gosched()
		return timebox.Raise(ag, "race", payload)
	}
}

// ledger records what concurrent writers were told about their writes.
type ledger struct {
	mu      sync.Mutex
	acked   map[string]bool
	maybe   map[string]bool
	errs    []error
	orders  map[string][]string
	batches [][]string
	// counts holds, for each command acknowledged with a counter state,
	// the count it returned: its own event's position in the log, plus 1.
	counts map[string]int
}

func newLedger() *ledger {
	return &ledger{
		acked:  map[string]bool{},
		maybe:  map[string]bool{},
		orders: map[string][]string{},
		counts: map[string]int{},
	}
}

// recordExec notes the outcome of one command raising payload, and the
// state it returned.
func (l *ledger) recordExec(worker, payload string, res counter, err error) {
	l.record(worker, []string{payload}, err)
	if err == nil {
		l.mu.Lock()
		l.counts[payload] = res.Count
		l.mu.Unlock()
	}
}

// record notes the outcome of one write of payloads by worker. A command
// failing with errCommand wrote nothing and is no error of the store.
func (l *ledger) record(worker string, payloads []string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case errors.Is(err, errCommand):
	case err == nil:
		for _, p := range payloads {
			l.acked[p] = true
		}
		l.orders[worker] = append(l.orders[worker], payloads...)
		l.batches = append(l.batches, payloads)
	case errors.Is(err, timebox.ErrUnknownOutcome):
		for _, p := range payloads {
			l.maybe[p] = true
		}
		l.errs = append(l.errs, err)
	default:
		l.errs = append(l.errs, err)
	}
}

// requireErrors checks the failed writes: none at all unless tolerant, and
// then only retries exhausted or outcomes unknown.
func (l *ledger) requireErrors(t *testing.T, tolerant bool) {
	t.Helper()
	require.NotEmpty(t, l.acked, "no write succeeded")
	for _, err := range l.errs {
		require.True(t, tolerant, "write failed: %v", err)
		if !errors.Is(err, timebox.ErrMaxRetriesExceeded) &&
			!errors.Is(err, timebox.ErrUnknownOutcome) {
			require.NoError(t, err)
		}
	}
}

// awaitAcked reads id's log from st until it holds every acknowledged
// payload (at once on a store that made the writes itself), and returns
// it.
func (l *ledger) awaitAcked(
	t *testing.T, st *timebox.Store, id timebox.AggregateID,
) []*timebox.Event {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		evs := events(t, st, id)
		seen := map[string]bool{}
		for _, e := range evs {
			seen[payload(t, e)] = true
		}
		missing := 0
		for p := range l.acked {
			if !seen[p] {
				missing++
			}
		}
		if missing == 0 || time.Now().After(deadline) {
			return evs
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// requireLog checks that evs hold every acknowledged payload exactly once,
// nothing that was not acknowledged (bar writes of unknown outcome), with
// gapless sequences, each worker's payloads in order and each batch
// contiguous. It returns the payloads in log order.
func (l *ledger) requireLog(t *testing.T, evs []*timebox.Event) []string {
	t.Helper()
	requireSequences(t, 0, evs)
	pos := map[string]int{}
	payloads := make([]string, len(evs))
	for i, e := range evs {
		p := payload(t, e)
		payloads[i] = p
		_, dup := pos[p]
		require.False(t, dup, "payload %q appears twice", p)
		require.True(t, l.acked[p] || l.maybe[p],
			"payload %q at %d was never acknowledged", p, i)
		pos[p] = i
	}
	for p := range l.acked {
		_, ok := pos[p]
		require.True(t, ok, "acknowledged payload %q missing from log", p)
	}
	for w, ps := range l.orders {
		for i := 1; i < len(ps); i++ {
			require.Less(t, pos[ps[i-1]], pos[ps[i]],
				"worker %s: %q logged after %q", w, ps[i-1], ps[i])
		}
	}
	for _, b := range l.batches {
		for i := 1; i < len(b); i++ {
			require.Equal(t, pos[b[0]]+i, pos[b[i]], "batch %q split", b)
		}
	}
	for p, n := range l.counts {
		require.Equal(t, pos[p]+1, n, "state returned to the command of %q", p)
	}
	return payloads
}

func payload(t *testing.T, e *timebox.Event) string {
	t.Helper()
	var p string
	require.NoError(t, json.Unmarshal(e.Data, &p), "event %d", e.Sequence)
	return p
}

func testRaceOneExecutor(t *testing.T, s Suite) {
	RaceExec(t, []*timebox.Store{s.store(t)}, 8, 20)
}

func testRaceSeveralExecutors(t *testing.T, s Suite) {
	st := s.store(t, timebox.Config{MaxRetries: 100})
	RaceExec(t, []*timebox.Store{st, st, st}, 3, 15)
}

func testRaceManyAggregates(t *testing.T, s Suite) {
	st := s.store(t)
	const aggregates, workers, commands = 4, 8, 12
	ex := timebox.NewExecutor(st, newCounter, counterAppliers)
	ledgers := make([]*ledger, aggregates)
	for i := range ledgers {
		ledgers[i] = newLedger()
	}
	together(workers, func(w int) {
		for c := range commands {
			a := (w + c) % aggregates
			p := fmt.Sprintf("w%d-c%d", w, c)
			res, err := ex.Exec(aid("race", fmt.Sprint(a)), raceCommand(p))
			ledgers[a].recordExec(fmt.Sprint(w), p, res, err)
		}
	})
	for a, l := range ledgers {
		id := aid("race", fmt.Sprint(a))
		l.requireErrors(t, false)
		evs := l.requireLog(t, events(t, st, id))
		require.Len(t, evs, len(l.acked))
		got, err := ex.Exec(id, func(counter, *timebox.Aggregator[counter]) error {
			return nil
		})
		require.NoError(t, err)
		require.Equal(t, len(evs), got.Count)
	}
}

// testRaceCommandErrors races commands on one aggregate of which every
// third fails after raising its event: each caller gets its own outcome,
// and only the successful commands' events are written.
func testRaceCommandErrors(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("race", "errors")
	const workers, commands = 6, 15
	ex := timebox.NewExecutor(st, newCounter, counterAppliers)
	l := newLedger()
	var failed sync.Map
	together(workers, func(w int) {
		for c := range commands {
			p := fmt.Sprintf("w%d-c%d", w, c)
			fails := (w+c)%3 == 0
			res, err := ex.Exec(id, func(s counter, ag *timebox.Aggregator[counter]) error {
				if err := raceCommand(p)(s, ag); err != nil || !fails {
					return err
				}
				return errCommand
			})
			if fails {
				assert.ErrorIs(t, err, errCommand, p)
				failed.Store(p, true)
			}
			l.recordExec(fmt.Sprint(w), p, res, err)
		}
	})
	l.requireErrors(t, false)
	payloads := l.requireLog(t, events(t, st, id))
	require.Len(t, payloads, len(l.acked))
	require.Len(t, payloads, workers*commands-workers*commands/3)
	for _, p := range payloads {
		_, bad := failed.Load(p)
		require.False(t, bad, "failed command's event %q written", p)
	}
}

// testRaceAppend races raw appends of batches of one to three events, each
// writer retrying at the head a conflict reports.
func testRaceAppend(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("race", "append")
	const workers, appends = 6, 15
	l := newLedger()
	together(workers, func(w int) {
		worker := fmt.Sprint(w)
		var head int64
		for c := range appends {
			batch, payloads := raceBatch(worker, c, 1+(w+c)%3)
			for {
				runtime.Gosched()
				err := st.AppendEvents(id, head, batch)
				var vc *timebox.VersionConflictError
				if !errors.As(err, &vc) {
					l.record(worker, payloads, err)
					head += int64(len(batch))
					break
				}
				checkConflict(t, head, vc)
				head = vc.ActualSequence
			}
		}
	})
	l.requireErrors(t, false)
	require.Len(t, l.requireLog(t, events(t, st, id)), len(l.acked))
}

func raceBatch(worker string, c, n int) ([]*timebox.Event, []string) {
	batch := make([]*timebox.Event, n)
	payloads := make([]string, n)
	for i := range batch {
		payloads[i] = fmt.Sprintf("w%s-c%d-%d", worker, c, i)
		batch[i] = &timebox.Event{
			Timestamp: at(c), Type: "race", Data: quote(payloads[i]),
		}
	}
	return batch, payloads
}

// checkConflict checks a conflict seen by a writer that expected head.
func checkConflict(t *testing.T, head int64, vc *timebox.VersionConflictError) {
	assert.Equal(t, head, vc.ExpectedSequence)
	if !assert.Greater(t, vc.ActualSequence, head) {
		return
	}
	if assert.Len(t, vc.NewEvents, int(vc.ActualSequence-head)) {
		for i, e := range vc.NewEvents {
			assert.Equal(t, head+int64(i), e.Sequence)
		}
	}
}

// testRaceReads checks that readers racing a writer never see part of a
// batch or a gap.
func testRaceReads(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("race", "reads")
	const batches, size = 30, 3
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				evs, err := st.GetEvents(id, 0)
				if !assert.NoError(t, err) {
					return
				}
				assert.Zero(t, len(evs)%size, "read %d events", len(evs))
				for i, e := range evs {
					assert.EqualValues(t, i, e.Sequence)
				}
				var v any
				res, err := st.GetSnapshot(id, &v)
				if assert.NoError(t, err) {
					assert.Zero(t, len(res.AdditionalEvents)%size)
				}
			}
		})
	}
	for b := range batches {
		batch, _ := raceBatch("0", b, size)
		require.NoError(t, st.AppendEvents(id, int64(b*size), batch))
	}
	close(done)
	wg.Wait()
	require.Len(t, events(t, st, id), batches*size)
}
