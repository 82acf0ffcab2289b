package bench

import (
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"testing"
)

// Target is a performance target checked against the figures of one
// benchmark run (issue 14, BENCHMARKS.md). A figure is named by the
// benchmark's full name and the unit it was reported in, e.g.
// "BenchmarkWorkloads/exec-seq cmds/s". With Over set, the target is on
// the ratio Of / Over, otherwise on the figure Of itself. Min and Max bound
// it; a zero bound is no bound unless MaxZero is set (for "0 failed").
type Target struct {
	Name     string
	Of, Over string
	Min, Max float64
	MaxZero  bool
}

// Figure names one reported figure: a benchmark's full name and a unit.
func Figure(benchmark, unit string) string { return benchmark + " " + unit }

var figures = struct {
	sync.Mutex
	runs map[string][]run1
}{runs: map[string][]run1{}}

// run1 is the figure of one run of a benchmark function (one b.N).
type run1 struct {
	n     int
	value float64
}

// Report is b.ReportMetric that also keeps the figure for the target
// summary. Of the b.N ramp a benchmark goes through, only its last (largest
// b.N) run counts; with -count, each repetition counts once and the summary
// takes their median.
func Report(b *testing.B, value float64, unit string) {
	b.ReportMetric(value, unit)
	key := Figure(b.Name(), unit)
	figures.Lock()
	defer figures.Unlock()
	rs := figures.runs[key]
	if k := len(rs) - 1; k >= 0 && b.N > rs[k].n {
		rs[k] = run1{b.N, value} // the ramp goes on
	} else {
		rs = append(rs, run1{b.N, value}) // a new repetition
	}
	figures.runs[key] = rs
}

// median returns the median figure reported under key, and false if none
// was.
func median(key string) (float64, bool) {
	figures.Lock()
	defer figures.Unlock()
	rs := figures.runs[key]
	if len(rs) == 0 {
		return 0, false
	}
	vs := make([]float64, len(rs))
	for i, r := range rs {
		vs[i] = r.value
	}
	slices.Sort(vs)
	if len(vs)%2 == 1 {
		return vs[len(vs)/2], true
	}
	return (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2, true
}

// PrintTargets writes one line per target whose figures were reported in
// this process, e.g.
//
//	ratio exec-seq/raw = 0.83 (target >= 0.80) ok
//
// ending in MISSED where the figure is out of bounds. Targets whose
// benchmarks did not run are left out.
func PrintTargets(w io.Writer, ts []Target) {
	for _, t := range ts {
		v, ok := median(t.Of)
		if !ok {
			continue
		}
		if t.Over != "" {
			d, ok := median(t.Over)
			if !ok || d == 0 {
				continue
			}
			v /= d
		}
		kind := "figure"
		if t.Over != "" || t.Min != 0 { // every lower bound is on a ratio
			kind = "ratio"
		}
		var bound string
		met := true
		if t.Min != 0 {
			bound = fmt.Sprintf(">= %.2f", t.Min)
			met = v >= t.Min
		}
		if t.Max != 0 || t.MaxZero {
			if bound != "" {
				bound += ", "
			}
			bound += fmt.Sprintf("<= %.2f", t.Max)
			met = met && v <= t.Max
		}
		verdict := "ok"
		if !met {
			verdict = "MISSED"
		}
		_, _ = fmt.Fprintf(w, "%s %s = %.2f (target %s) %s\n", kind, t.Name, v, bound, verdict)
	}
}

// TestingM is what goleak.VerifyTestMain and testing.M have in common.
type TestingM interface{ Run() int }

// WithTargets wraps m so that, once its tests and benchmarks have run, the
// targets are printed to standard output (see PrintTargets). A backend's
// TestMain passes it where it passed m.
func WithTargets(m TestingM, ts ...Target) TestingM {
	return withTargets{m, ts}
}

type withTargets struct {
	m  TestingM
	ts []Target
}

func (w withTargets) Run() int {
	code := w.m.Run()
	PrintTargets(os.Stdout, w.ts)
	return code
}
