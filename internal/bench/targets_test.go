package bench

import (
	"strings"
	"testing"
)

func TestPrintTargets(t *testing.T) {
	figures.Lock()
	figures.runs = map[string][]run1{
		"A/seq cmds/s": {{100, 90}, {100, 70}, {100, 80}}, // median 80
		"A/raw ops/s":  {{100, 100}},
		"A/c failed":   {{100, 1}},
	}
	figures.Unlock()
	var out strings.Builder
	PrintTargets(&out, []Target{
		{Name: "seq/raw", Of: "A/seq cmds/s", Over: "A/raw ops/s", Min: 0.8},
		{Name: "seq/raw high", Of: "A/seq cmds/s", Over: "A/raw ops/s", Min: 0.9},
		{Name: "failed", Of: "A/c failed", MaxZero: true},
		{Name: "not run", Of: "B/x cmds/s", Min: 1},
	})
	want := "ratio seq/raw = 0.80 (target >= 0.80) ok\n" +
		"ratio seq/raw high = 0.80 (target >= 0.90) MISSED\n" +
		"figure failed = 1.00 (target <= 0.00) MISSED\n"
	if out.String() != want {
		t.Fatalf("got\n%swant\n%s", out.String(), want)
	}
}

func TestReportKeepsLastOfRamp(t *testing.T) {
	figures.Lock()
	figures.runs = map[string][]run1{}
	figures.Unlock()
	for range 2 { // two repetitions, each a ramp
		testing.Benchmark(func(b *testing.B) { Report(b, float64(b.N), "n") })
	}
	figures.Lock()
	defer figures.Unlock()
	for _, rs := range figures.runs {
		if len(rs) != 2 || rs[0].n <= 1 || rs[1].n <= 1 {
			t.Fatalf("runs %v, want the last of each of 2 ramps", rs)
		}
	}
}
