package history

import (
	"fmt"
	"hash/fnv"
	"math"
	"time"

	"github.com/anishathalye/porcupine"
)

// logState is an aggregate's log of event keys as a persistent list: each
// node is the log up to and including its key, so appending shares the
// prefix and a state is never modified once made. nil is the empty log.
type logState struct {
	prev *logState
	key  string
	n    int64
	hash uint64
}

func (s *logState) len() int64 {
	if s == nil {
		return 0
	}
	return s.n
}

func (s *logState) sum() uint64 {
	if s == nil {
		return 0
	}
	return s.hash
}

// push returns the log s followed by ks.
func (s *logState) push(ks []string) *logState {
	for _, k := range ks {
		h := fnv.New64a()
		_, _ = h.Write([]byte(k))
		s = &logState{
			prev: s, key: k, n: s.len() + 1,
			hash: (s.sum()^h.Sum64())*1099511628211 + 1,
		}
	}
	return s
}

// equalLogs reports whether a and b hold the same keys.
func equalLogs(a, b *logState) bool {
	if a.len() != b.len() || a.sum() != b.sum() {
		return false
	}
	for ; a != b; a, b = a.prev, b.prev {
		if a.key != b.key {
			return false
		}
	}
	return true
}

// suffixIs reports whether the keys of s from sequence from on are ks.
func (s *logState) suffixIs(from int64, ks []string) bool {
	if from >= s.len() {
		return len(ks) == 0
	}
	if s.len()-from != int64(len(ks)) {
		return false
	}
	for i := len(ks) - 1; i >= 0; i, s = i-1, s.prev {
		if s.key != ks[i] {
			return false
		}
	}
	return true
}

type (
	// input is an operation's call, as the model sees it.
	input struct {
		agg  string
		kind Kind
		// at is the expected sequence of a write (-1: the head), or the
		// sequence a read starts at.
		at   int64
		keys []string
		desc string
	}

	// output is an operation's result, as the model sees it.
	output struct {
		outcome Outcome
		actual  int64
		seen    []string
	}
)

// Model is the porcupine model of one aggregate's log with
// expected-sequence appends, partitioned by aggregate. Its state is the
// log of event keys:
//   - an OK write at sequence e requires len(log) == e and appends its
//     batch (an Exec that did not report a sequence appends at the head);
//   - a Conflict at e requires len(log) != e, len(log) == the reported head
//     and the reported new events to be the log from e on;
//   - an Ambiguous write appends its batch if len(log) == e (at the head for
//     an Exec) and otherwise changes nothing. Its Return is the end of
//     time, so it may be linearised after every other operation, where
//     taking effect is invisible: together this covers "happened at any
//     point, or never";
//   - a Read from f requires the log from f on to equal what it returned.
//
// An Ambiguous write that Resolve found Committed is checked as an OK write
// at the sequence it was found at, still returning at the end of time.
//
// Failed operations, and Conflict outcomes of Exec, change nothing and
// are left out of the history.
var Model = porcupine.Model{
	Partition: partition,
	Init:      func() any { return (*logState)(nil) },
	Step:      step,
	Equal: func(a, b any) bool {
		return equalLogs(a.(*logState), b.(*logState))
	},
	Hash: func(s any) uint64 { return s.(*logState).sum() },
	DescribeOperation: func(in, out any) string {
		return in.(input).desc
	},
	DescribeState: func(s any) string {
		return fmt.Sprintf("%d events", s.(*logState).len())
	},
}

func step(state, in, out any) (bool, any) {
	s, i, o := state.(*logState), in.(input), out.(output)
	if i.kind == Read {
		return s.suffixIs(i.at, o.seen), s
	}
	at := i.at
	if at < 0 {
		at = s.len()
	}
	switch o.outcome {
	case OK:
		return s.len() == at, s.push(i.keys)
	case Conflict:
		return s.len() != at && s.len() == o.actual &&
			s.suffixIs(at, o.seen), s
	default:
		if s.len() == at {
			return true, s.push(i.keys)
		}
		return true, s
	}
}

func partition(ops []porcupine.Operation) [][]porcupine.Operation {
	idx := map[string]int{}
	var res [][]porcupine.Operation
	for _, op := range ops {
		agg := op.Input.(input).agg
		i, ok := idx[agg]
		if !ok {
			i = len(res)
			idx[agg] = i
			res = append(res, nil)
		}
		res[i] = append(res[i], op)
	}
	return res
}

// Operations converts ops to the porcupine history Model checks: Failed
// operations and Exec conflicts are dropped, and Ambiguous writes return
// at the end of time.
func Operations(ops []Op) []porcupine.Operation {
	res := make([]porcupine.Operation, 0, len(ops))
	for _, op := range ops {
		if op.Outcome == Failed || (op.Kind == Exec && op.Outcome == Conflict) {
			continue
		}
		in := input{agg: op.key(), kind: op.Kind, at: op.Expected, desc: op.String()}
		if op.Kind == Read {
			in.at = op.From
		} else {
			in.keys = op.Batch.Keys()
		}
		ret, out := int64(op.Return), output{
			outcome: op.Outcome, actual: op.Actual, seen: op.Seen,
		}
		if op.Outcome == Ambiguous {
			ret = math.MaxInt64
		}
		if op.Committed {
			out.outcome = OK
		}
		res = append(res, porcupine.Operation{
			ClientId: op.Client, Input: in, Call: int64(op.Call),
			Output: out, Return: ret,
		})
	}
	return res
}

// Linearizable checks ops against Model within timeout: porcupine.Ok,
// porcupine.Illegal, or porcupine.Unknown when the check timed out.
func Linearizable(ops []Op, timeout time.Duration) porcupine.CheckResult {
	return porcupine.CheckOperationsTimeout(Model, Operations(ops), timeout)
}
