package conformance

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
)

// Shared returns n stores on one namespace, standing for n processes;
// each is closed, and the namespace emptied, when t ends. A backend whose
// stores cannot share data may return one store n times.
type Shared func(t *testing.T, cfg timebox.Config, n int) []*timebox.Store

// ContentionEnv names the variable that turns on the contention
// measurement (Contention/ cases), which only logs figures.
const ContentionEnv = "TIMEBOX_CONTENTION"

// contentionCases measure, when ContentionEnv is set and the Suite has a
// Shared factory, how many commands of 8 and 32 executors (each on its own
// store) on one aggregate exhaust Config.MaxRetries.
func contentionCases(s Suite) []testCase {
	if s.Shared == nil || os.Getenv(ContentionEnv) == "" {
		return nil
	}
	var res []testCase
	for _, n := range []int{8, 32} {
		res = append(res, testCase{
			fmt.Sprintf("Executors%d", n),
			func(t *testing.T, s Suite) { measureContention(t, s, n) },
		})
	}
	return res
}

// measureContention runs n executors, each on its own store, each running
// perExec commands in turn on one aggregate, and logs the share of
// commands that failed with ErrMaxRetriesExceeded. Any other error fails.
func measureContention(t *testing.T, s Suite, n int) {
	const commands = 1600
	perExec := commands / n
	sts := s.Shared(t, timebox.Config{}, n)
	require.Len(t, sts, n)
	id := aid("contention", fmt.Sprint(n))
	var mu sync.Mutex
	failed := 0
	start := time.Now()
	var wg sync.WaitGroup
	for e, st := range sts {
		ex := timebox.NewExecutor(st, newCounter, counterAppliers)
		wg.Go(func() {
			for c := range perExec {
				_, err := ex.Exec(id, raceCommand(fmt.Sprintf("e%d-c%d", e, c)))
				if errors.Is(err, timebox.ErrMaxRetriesExceeded) {
					mu.Lock()
					failed++
					mu.Unlock()
					continue
				}
				require.NoError(t, err)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	total := n * perExec
	got := events(t, sts[0], id)
	require.Len(t, got, total-failed)
	t.Logf("| %d executors | %d commands | %d failed | %.2f%% | %.0f cmds/s |",
		n, total, failed, 100*float64(failed)/float64(total),
		float64(total-failed)/elapsed.Seconds())
}
