package history

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
)

// Report sums up a recorded run: what was invoked and how it ended, what
// the audit of the final logs found, whether the history is linearizable,
// and, for a run with a fault, throughput around the fault and the time
// the store took to recover.
type Report struct {
	Audit

	// Invoked counts every operation; OK, Conflict, Failed and Ambiguous
	// count them by outcome (reads are never Ambiguous); Reads counts the
	// reads among them.
	Invoked, OK, Conflict, Failed, Ambiguous, Reads int

	// Resent counts the appends acknowledged only after the Store sent
	// them again (a send's outcome unknown, or the backend unavailable),
	// and Settled those of them whose re-send found the append stored
	// already: outcomes that would have been ambiguous, resolved by the
	// Store. An Exec's append counts once however many commands it
	// carried. Only stores opened with Hooks count them.
	Resent, Settled int64

	// Linearizable is porcupine's verdict: Ok, Illegal, or Unknown when the
	// check timed out.
	Linearizable porcupine.CheckResult

	// Fault is true when the run had a fault window.
	Fault bool
	// Before, During and After are acknowledged writes per second before,
	// during and after the fault window (During is 0 for a fault that took
	// no measurable time; without a fault, Before covers the whole run).
	Before, During, After float64
	// Recovered says a write was acknowledged after the fault ended, and
	// Recovery how long after.
	Recovered bool
	Recovery  time.Duration
	// Waited is how long the run went on after the fault ended.
	Waited time.Duration
	// Elapsed is the length of the run.
	Elapsed time.Duration
	// FaultErr is the fault function's error, if any.
	FaultErr error
	// Errors holds up to a few distinct error messages, for diagnosis.
	Errors []string
	// Ops are the recorded operations, in the order they ended (set by
	// Run), for further checks such as CheckFeed's.
	Ops []Op
}

// maxErrorSamples bounds Report.Errors.
const maxErrorSamples = 5

// count fills in the operation counts of r from ops.
func (r *Report) count(ops []Op) {
	seen := map[string]bool{}
	for _, op := range ops {
		r.Invoked++
		if op.Kind == Read {
			r.Reads++
		}
		switch op.Outcome {
		case OK:
			r.OK++
		case Conflict:
			r.Conflict++
		case Failed:
			r.Failed++
		case Ambiguous:
			r.Ambiguous++
		}
		if op.Err == nil || op.Outcome == Conflict {
			continue
		}
		if msg := op.Err.Error(); !seen[msg] && len(r.Errors) < maxErrorSamples {
			seen[msg] = true
			r.Errors = append(r.Errors, msg)
		}
	}
}

// Summarize audits ops against the final logs of st (see ReadLogs) and
// checks their linearizability, with ambiguous writes settled by those logs
// (see Resolve), within checkTimeout. It fills in
// everything but the fault figures.
func Summarize(
	ctx context.Context, st *timebox.Store, ops []Op, checkTimeout time.Duration,
) (Report, error) {
	var r Report
	r.count(ops)
	logs, err := ReadLogs(ctx, st, ops)
	if err != nil {
		return r, err
	}
	r.Audit = AuditLogs(ops, logs)
	r.Linearizable = Linearizable(Resolve(ops, logs), checkTimeout)
	r.Recovered = true
	return r, nil
}

// Check summarizes the operations rec recorded against the final logs of
// st, logs the report, and fails t unless the report is clean (see
// Require). The audit's reads and the linearizability check are bounded by
// DefaultCheckTimeout each.
func Check(t testing.TB, st *timebox.Store, rec *Recorder) Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), DefaultCheckTimeout)
	defer cancel()
	r, err := Summarize(ctx, st, rec.Ops(), DefaultCheckTimeout)
	require.NoError(t, err)
	Require(t, r)
	return r
}

// Require logs r and fails t unless r shows no lost, duplicated, partial,
// phantom or misplaced event, no gap, no history porcupine finds illegal,
// and, after a fault, recovery. A check that timed out (Unknown) is
// logged but passes: porcupine found no violation in the time it had.
func Require(t testing.TB, r Report) {
	t.Helper()
	t.Log(r.String())
	require.Zero(t, r.Lost, "lost acknowledged events")
	require.Zero(t, r.Duplicated, "duplicated events")
	require.Zero(t, r.Gaps, "gaps")
	require.Zero(t, r.Partial, "partial batches")
	require.Zero(t, r.Phantom, "phantom events")
	require.Zero(t, r.Misplaced, "misplaced batches")
	require.NotEqual(t, porcupine.Illegal, r.Linearizable, "linearizability")
	require.True(t, r.Recovered,
		"no write acknowledged in the %s the run went on after the fault ended",
		r.Waited.Round(time.Millisecond))
	if r.Linearizable == porcupine.Unknown {
		t.Log("linearizability check timed out without finding a violation")
	}
}

// String describes r on a few lines.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ops %d (reads %d): ok %d, conflict %d, failed %d, "+
		"ambiguous %d (committed %d); re-sent %d (found stored %d)\n",
		r.Invoked, r.Reads, r.OK, r.Conflict, r.Failed, r.Ambiguous,
		r.AmbiguousCommitted, r.Resent, r.Settled)
	fmt.Fprintf(&b, "events %d, acknowledged writes %d: lost %d, duplicated %d, "+
		"gaps %d, partial %d, phantom %d, misplaced %d; linearizable: %s\n",
		r.Events, r.Acknowledged, r.Lost, r.Duplicated, r.Gaps, r.Partial,
		r.Phantom, r.Misplaced, r.Linearizable)
	fmt.Fprintf(&b, "writes/s before %.0f, during %.0f, after %.0f; recovery %s; "+
		"elapsed %s", r.Before, r.During, r.After, r.recovery(),
		r.Elapsed.Round(time.Millisecond))
	if r.FaultErr != nil {
		fmt.Fprintf(&b, "\nfault error: %v", r.FaultErr)
	}
	for _, e := range r.Errors {
		fmt.Fprintf(&b, "\nerror: %s", e)
	}
	return b.String()
}

func (r Report) recovery() string {
	switch {
	case !r.Fault:
		return "n/a"
	case !r.Recovered:
		return "never"
	}
	return r.Recovery.Round(time.Millisecond).String()
}

// MarkdownHeader is the header of the table Markdown rows belong to.
const MarkdownHeader = "| Backend | Scenario | Invoked | OK | Conflict | Failed " +
	"| Ambiguous (committed) | Re-sent (found stored) | Lost | Dup | Gaps " +
	"| Linearizable | Writes/s before | during | after | Recovery |\n" +
	"|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|--:|--:|--:|"

// Markdown returns r as a row of the RELIABILITY.md table (MarkdownHeader).
func (r Report) Markdown(backend, scenario string) string {
	during, after := "–", "–"
	if r.Fault {
		during, after = fmt.Sprintf("%.0f", r.During), fmt.Sprintf("%.0f", r.After)
	}
	return fmt.Sprintf("| %s | %s | %d | %d | %d | %d | %d (%d) | %d (%d) "+
		"| %d | %d | %d | %s | %.0f | %s | %s | %s |",
		backend, scenario, r.Invoked, r.OK, r.Conflict, r.Failed, r.Ambiguous,
		r.AmbiguousCommitted, r.Resent, r.Settled, r.Lost, r.Duplicated,
		r.Gaps, r.Linearizable, r.Before, during, after, r.recovery())
}
