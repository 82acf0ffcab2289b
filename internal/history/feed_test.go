package history_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/history"
)

// feedOf returns a feed of n events of agg at positions 1.0 .. n.0, the
// event at position i having sequence i-1, ID "e<i>" and key "F.<i>".
func feedOf(n int) []*timebox.Event {
	res := make([]*timebox.Event, n)
	for i := range res {
		res[i] = &timebox.Event{
			AggregateID: agg, Sequence: int64(i), ID: fmt.Sprintf("e%d", i+1),
			Position: timebox.Position{Commit: uint64(i + 1)},
		}
	}
	return res
}

// fkey is the key of the feed event at position p (feedOf).
func fkey(p int) string { return fmt.Sprintf("F.%d", p) }

// handled returns inc's handlings of the feedOf events at positions ps.
func handled(inc int, ps ...int) []history.Handling {
	res := make([]history.Handling, len(ps))
	for i, p := range ps {
		res[i] = history.Handling{
			Incarnation: inc, Position: timebox.Position{Commit: uint64(p)},
			Aggregate: agg.String(), Sequence: int64(p - 1),
			EventID: fmt.Sprintf("e%d", p), Key: fkey(p),
		}
	}
	return res
}

// recording returns a recording up to position end of incs incarnations
// (the last still running, the others ending as ends says, Stopped by
// default) and the handlings hs, in order.
func recording(
	end, incs int, ends map[int]history.IncarnationEnd, hs ...[]history.Handling,
) history.FeedRecording {
	rec := history.FeedRecording{End: timebox.Position{Commit: uint64(end)}}
	for i := range incs {
		e, ok := ends[i]
		if !ok && i < incs-1 {
			e = history.Stopped
		}
		rec.Incarnations = append(rec.Incarnations, history.Incarnation{End: e})
	}
	for _, h := range hs {
		rec.Handlings = append(rec.Handlings, h...)
	}
	return rec
}

func ackedUpTo(n int) []string {
	var res []string
	for p := 1; p <= n; p++ {
		res = append(res, fkey(p))
	}
	return res
}

func TestCheckFeedClean(t *testing.T) {
	// 0 stops cleanly after 3; 1 handles 4 and 5, commits 4 and is
	// abandoned; 2 takes over at 4, handles 5 again and goes on; 3 crashes
	// at once; 4 resumes after 6. Position 7 is past the drained end.
	rec := recording(6, 5, map[int]history.IncarnationEnd{
		1: history.Abandoned, 3: history.Crashed,
	},
		handled(0, 1, 2, 3), handled(1, 4, 5), handled(2, 5, 6),
		handled(4, 7))
	rec.Incarnations[3].Err = "store is closed"
	r := history.CheckFeed(rec, feedOf(7), ackedUpTo(6))
	require.Zero(t, r.Anomalies(), "%+v", r)
	require.Equal(t, 6, r.Feed)
	require.Equal(t, 7, r.Handled)
	require.Equal(t, 8, r.Handlings)
	require.Equal(t, 1, r.Duplicates)
	require.Equal(t, 4, r.Restarts)
	require.Equal(t, 1, r.Takeovers)
	require.Equal(t, 1, r.Crashes)
	require.Equal(t, []string{"store is closed"}, r.Errors)
	require.Contains(t, r.Markdown("memory", "pause"),
		"| memory | pause | 6 | 7 | 1 | 4 (1, 1) | 0 | 0 | 0 | 0 | 0 |")
}

func TestCheckFeedPlanted(t *testing.T) {
	abandoned := map[int]history.IncarnationEnd{0: history.Abandoned}
	for name, tc := range map[string]struct {
		rec   history.FeedRecording
		acked []string
		want  history.FeedReport
	}{
		"SkippedPosition": {
			rec:   recording(3, 1, nil, handled(0, 1, 3)),
			acked: ackedUpTo(3),
			want:  history.FeedReport{Skipped: 1, Lost: 1},
		},
		"SkippedUnacknowledged": {
			rec:  recording(3, 1, nil, handled(0, 1, 3)),
			want: history.FeedReport{Skipped: 1},
		},
		"SkippedThenDelivered": {
			rec: recording(3, 2, abandoned,
				handled(0, 1, 3), handled(1, 2, 3)),
			want: history.FeedReport{Reordered: 1, Unexplained: 1},
		},
		"OutOfOrder": {
			rec:  recording(3, 1, nil, handled(0, 1, 3, 2)),
			want: history.FeedReport{Disordered: 1, Reordered: 1},
		},
		"DuplicateWithinIncarnation": {
			rec:  recording(3, 1, nil, handled(0, 1, 2, 2, 3)),
			want: history.FeedReport{Disordered: 1, Unexplained: 1},
		},
		"DuplicateByEarlierIncarnation": {
			rec: recording(3, 2, abandoned,
				handled(0, 1, 2), handled(1, 2, 3), handled(0, 3)),
			want: history.FeedReport{Unexplained: 1},
		},
		"DuplicateAfterFreshEvent": {
			rec: recording(3, 2, abandoned,
				handled(0, 1, 2), handled(1, 3), handled(1, 2)),
			want: history.FeedReport{Disordered: 1, Unexplained: 1},
		},
		"DuplicateNotFromPredecessor": {
			rec: recording(4, 3, nil,
				handled(0, 1, 2, 3), handled(1, 4), handled(2, 3)),
			want: history.FeedReport{Unexplained: 1},
		},
		"UnknownPosition": {
			rec:  recording(9, 1, nil, handled(0, 1, 2, 3, 4, 9)),
			want: history.FeedReport{Mismatched: 1},
		},
		"OtherEvent": {
			rec: recording(3, 1, nil, handled(0, 1),
				[]history.Handling{{
					Position: timebox.Position{Commit: 2}, Aggregate: agg.String(),
					Sequence: 5, EventID: "e2", Key: fkey(2),
				}},
				handled(0, 3)),
			want: history.FeedReport{Mismatched: 1},
		},
		"LostBeforeTheFeed": {
			rec:   recording(3, 1, nil, handled(0, 1, 2, 3)),
			acked: []string{"Z.0"},
			want:  history.FeedReport{Lost: 1},
		},
	} {
		t.Run(name, func(t *testing.T) {
			got := history.CheckFeed(tc.rec, feedOf(4), tc.acked)
			require.NotZero(t, got.Anomalies())
			require.Equal(t, tc.want.Anomalies(), got.Anomalies(), "%+v", got)
			require.Equal(t, tc.want, anomalies(got))
		})
	}
}

// anomalies returns r with only its anomaly counts.
func anomalies(r history.FeedReport) history.FeedReport {
	return history.FeedReport{
		Lost: r.Lost, Skipped: r.Skipped, Mismatched: r.Mismatched,
		Disordered: r.Disordered, Reordered: r.Reordered,
		Unexplained: r.Unexplained,
	}
}

func TestAckedKeys(t *testing.T) {
	ops := []history.Op{
		write("A", 2, 0, history.OK, 0, 1),
		write("B", 1, 2, history.Ambiguous, 2, 3),
		exec(write("C", 1, 2, history.OK, 2, 3)),
		read(0, 4, 5, "A.0"),
	}
	require.Equal(t, []string{"A.0", "A.1", "C.0"}, history.AckedKeys(ops))
}
