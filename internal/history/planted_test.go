package history_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/history"
)

var agg = timebox.NewAggregateID("planted")

// write returns a write of batch id×size at expected with outcome, in the
// time interval [call, ret] (milliseconds).
func write(
	id string, size int, expected int64, o history.Outcome, call, ret int,
) history.Op {
	return history.Op{
		Aggregate: agg, Kind: history.Append, Expected: expected,
		Batch: history.Batch{ID: id, Size: size}, Outcome: o,
		Call: ms(call), Return: ms(ret),
	}
}

// read returns a read from from that saw keys, in [call, ret].
func read(from int64, call, ret int, keys ...string) history.Op {
	return history.Op{
		Client: 1, Aggregate: agg, Kind: history.Read, From: from,
		Outcome: history.OK, Seen: keys, Call: ms(call), Return: ms(ret),
	}
}

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

// stored returns a log of agg holding events "batch.index" at sequences
// 0, 1, ... unless seqs gives them.
func stored(keys []string, seqs ...int64) []history.Log {
	evs := make([]*timebox.Event, len(keys))
	for i, k := range keys {
		var b string
		var idx, size int
		_, err := fmt.Sscanf(k, "%1s.%d/%d", &b, &idx, &size)
		if err != nil {
			panic(err)
		}
		data, _ := json.Marshal(map[string]any{"b": b, "i": idx, "n": size})
		seq := int64(i)
		if len(seqs) > 0 {
			seq = seqs[i]
		}
		evs[i] = &timebox.Event{
			Sequence: seq, Type: history.EventType, AggregateID: agg, Data: data,
		}
	}
	return []history.Log{{ID: agg, Events: evs}}
}

func TestAuditClean(t *testing.T) {
	ops := []history.Op{
		write("A", 2, 0, history.OK, 0, 1),
		write("B", 1, 2, history.Ambiguous, 2, 3),
		write("C", 1, 0, history.Conflict, 2, 3),
		write("D", 1, 3, history.Failed, 2, 3),
		write("E", 1, 2, history.Ambiguous, 4, 5),
	}
	a := history.AuditLogs(ops, stored([]string{"A.0/2", "A.1/2", "B.0/1"}))
	require.Zero(t, a.Anomalies(), "%+v", a)
	require.Equal(t, 1, a.AmbiguousCommitted)
	require.Equal(t, 1, a.Acknowledged)
	require.Equal(t, 3, a.Events)
}

func TestAuditPlanted(t *testing.T) {
	ok := write("A", 2, 0, history.OK, 0, 1)
	for name, tc := range map[string]struct {
		ops  []history.Op
		logs []history.Log
		want history.Audit
	}{
		"LostAck": {
			ops:  []history.Op{ok, write("B", 1, 2, history.OK, 2, 3)},
			logs: stored([]string{"A.0/2", "A.1/2"}),
			want: history.Audit{Lost: 1},
		},
		"LostWholeLog": {
			ops:  []history.Op{ok},
			want: history.Audit{Lost: 2},
		},
		"Duplicate": {
			ops:  []history.Op{ok},
			logs: stored([]string{"A.0/2", "A.1/2", "A.0/2", "A.1/2"}),
			want: history.Audit{Duplicated: 2},
		},
		"RepeatedSequence": {
			ops:  []history.Op{ok, write("B", 1, 1, history.Ambiguous, 0, 1)},
			logs: stored([]string{"A.0/2", "A.1/2", "B.0/1"}, 0, 1, 1),
			want: history.Audit{Duplicated: 1},
		},
		"Gap": {
			ops:  []history.Op{ok, write("B", 1, 3, history.OK, 2, 3)},
			logs: stored([]string{"A.0/2", "A.1/2", "B.0/1"}, 0, 1, 3),
			want: history.Audit{Gaps: 1},
		},
		"AmbiguousTwice": {
			ops:  []history.Op{write("B", 1, 0, history.Ambiguous, 0, 1)},
			logs: stored([]string{"B.0/1", "B.0/1"}),
			want: history.Audit{Duplicated: 1},
		},
		"AmbiguousPartial": {
			ops:  []history.Op{write("B", 3, 0, history.Ambiguous, 0, 1)},
			logs: stored([]string{"B.0/3", "B.1/3"}),
			want: history.Audit{Partial: 1},
		},
		"SplitBatch": {
			ops:  []history.Op{ok, write("B", 1, 1, history.Ambiguous, 0, 1)},
			logs: stored([]string{"A.0/2", "B.0/1", "A.1/2"}),
			want: history.Audit{Partial: 1, Lost: 0},
		},
		"FailedButWritten": {
			ops:  []history.Op{write("B", 1, 0, history.Failed, 0, 1)},
			logs: stored([]string{"B.0/1"}),
			want: history.Audit{Phantom: 1},
		},
		"UnknownBatch": {
			ops:  []history.Op{ok},
			logs: stored([]string{"A.0/2", "A.1/2", "Z.0/1"}),
			want: history.Audit{Phantom: 1},
		},
		"Misplaced": {
			ops:  []history.Op{write("A", 2, 1, history.OK, 0, 1)},
			logs: stored([]string{"A.0/2", "A.1/2"}),
			want: history.Audit{Misplaced: 1},
		},
	} {
		t.Run(name, func(t *testing.T) {
			got := history.AuditLogs(tc.ops, tc.logs)
			require.NotZero(t, got.Anomalies())
			got.Events, got.Acknowledged, got.AmbiguousCommitted = 0, 0, 0
			require.Equal(t, tc.want, got)
		})
	}
}

func TestLinearizable(t *testing.T) {
	a0, b0 := "A.0", "B.0"
	for name, tc := range map[string]struct {
		ops  []history.Op
		want porcupine.CheckResult
	}{
		"ReadAfterAppend": {
			ops: []history.Op{
				write("A", 1, 0, history.OK, 0, 10), read(0, 20, 30, a0),
			},
			want: porcupine.Ok,
		},
		"StaleRead": {
			ops: []history.Op{
				write("A", 1, 0, history.OK, 0, 10), read(0, 20, 30),
			},
			want: porcupine.Illegal,
		},
		"ConcurrentRead": {
			ops: []history.Op{
				write("A", 1, 0, history.OK, 0, 30), read(0, 10, 20),
				read(0, 12, 25, a0),
			},
			want: porcupine.Ok,
		},
		"ReadGoesBack": {
			ops: []history.Op{
				write("A", 1, 0, history.OK, 0, 30), read(0, 10, 20, a0),
				read(0, 21, 25),
			},
			want: porcupine.Illegal,
		},
		"AmbiguousTakesEffectLate": {
			ops: []history.Op{
				write("A", 1, 0, history.Ambiguous, 0, 5), read(0, 10, 20),
				read(0, 30, 40, a0),
			},
			want: porcupine.Ok,
		},
		"AmbiguousNeverTakesEffect": {
			ops: []history.Op{
				write("A", 1, 0, history.Ambiguous, 0, 5), read(0, 10, 20),
				write("B", 1, 0, history.OK, 30, 40), read(0, 50, 60, b0),
			},
			want: porcupine.Ok,
		},
		"AmbiguousUndone": {
			ops: []history.Op{
				write("A", 1, 0, history.Ambiguous, 0, 5), read(0, 10, 20, a0),
				read(0, 30, 40),
			},
			want: porcupine.Illegal,
		},
		"BothAcknowledgedAtZero": {
			ops: []history.Op{
				write("A", 1, 0, history.OK, 0, 10),
				write("B", 1, 0, history.OK, 0, 10),
			},
			want: porcupine.Illegal,
		},
		"ConflictReportsHead": {
			ops: []history.Op{
				write("A", 1, 0, history.OK, 0, 10),
				conflict(write("B", 1, 0, history.Conflict, 20, 30), 1, a0),
			},
			want: porcupine.Ok,
		},
		"ConflictWrongHead": {
			ops: []history.Op{
				write("A", 1, 0, history.OK, 0, 10),
				conflict(write("B", 1, 0, history.Conflict, 20, 30), 5, a0),
			},
			want: porcupine.Illegal,
		},
		"ConflictAtHead": {
			ops: []history.Op{
				conflict(write("B", 1, 0, history.Conflict, 20, 30), 0),
			},
			want: porcupine.Illegal,
		},
		"TailRead": {
			ops: []history.Op{
				write("A", 1, 0, history.OK, 0, 10),
				write("B", 1, 1, history.OK, 11, 12), read(1, 20, 30, b0),
			},
			want: porcupine.Ok,
		},
		"ExecAtHead": {
			ops: []history.Op{
				write("A", 1, 0, history.OK, 0, 10),
				exec(write("B", 1, -1, history.OK, 11, 12)),
				exec(write("C", 1, -1, history.Ambiguous, 13, 14)),
				read(0, 20, 30, a0, b0),
			},
			want: porcupine.Ok,
		},
		"OtherAggregateIndependent": {
			ops: []history.Op{
				write("A", 1, 0, history.OK, 0, 10),
				other(write("B", 1, 0, history.OK, 0, 10)),
				read(0, 20, 30, a0),
			},
			want: porcupine.Ok,
		},
	} {
		t.Run(name, func(t *testing.T) {
			require.Equal(t, tc.want, history.Linearizable(tc.ops, time.Minute))
		})
	}
}

func conflict(op history.Op, actual int64, seen ...string) history.Op {
	op.Actual, op.Seen = actual, seen
	return op
}

func exec(op history.Op) history.Op {
	op.Kind = history.Exec
	return op
}

func other(op history.Op) history.Op {
	op.Aggregate = timebox.NewAggregateID("other")
	return op
}

func TestResolve(t *testing.T) {
	ops := []history.Op{
		exec(write("A", 1, -1, history.Ambiguous, 0, 5)),
		write("B", 2, 0, history.Ambiguous, 0, 5),
		write("C", 2, 0, history.Ambiguous, 0, 5),
		read(0, 10, 20, "A.0"),
	}
	logs := stored([]string{"A.0/1", "C.0/2"})
	res := history.Resolve(ops, logs)
	require.Len(t, res, 3, "B never took effect")
	require.True(t, res[0].Committed)
	require.Zero(t, res[0].Expected)
	require.False(t, res[1].Committed, "C is partial: left to the audit")
	require.Equal(t, porcupine.Ok, history.Linearizable(res, time.Minute))

	// A read saw A, but the final log does not hold it: A was undone.
	undone := history.Resolve(ops, stored([]string{"C.0/2", "C.1/2"}))
	require.Equal(t, porcupine.Illegal, history.Linearizable(undone, time.Minute))
}
