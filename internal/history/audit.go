package history

import (
	"context"
	"fmt"
	"time"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/codec"
)

// Audit compares the final logs with the recorded operations. Every field
// but Events, Acknowledged and AmbiguousCommitted counts an anomaly; a
// correct store leaves them all zero.
type Audit struct {
	// Events is the number of events in the audited logs.
	Events int
	// Acknowledged is the number of OK writes.
	Acknowledged int
	// Lost counts acknowledged events missing from the logs.
	Lost int
	// Duplicated counts extra copies of an event, and repeated sequences.
	Duplicated int
	// Gaps counts sequence numbers missing below an aggregate's head.
	Gaps int
	// Partial counts batches present only in part, out of order or split.
	Partial int
	// Phantom counts events no OK or Ambiguous write can explain: those of
	// failed or conflicting writes, of unknown batches, or undecodable.
	Phantom int
	// Misplaced counts OK writes whose batch is not at the sequence it was
	// acknowledged at.
	Misplaced int
	// AmbiguousCommitted counts Ambiguous writes found whole in the logs.
	AmbiguousCommitted int
}

// Anomalies returns the number of anomalies the audit found.
func (a Audit) Anomalies() int {
	return a.Lost + a.Duplicated + a.Gaps + a.Partial + a.Phantom + a.Misplaced
}

// Log is an aggregate's final log, as read from a store.
type Log struct {
	ID     timebox.AggregateID
	Events []*timebox.Event
}

// writeRecord is what the audit knows of a batch.
type writeRecord struct {
	op    Op
	found map[int][]int64 // event index -> sequences it was found at
}

// AuditLogs checks logs, the final logs of the aggregates ops wrote to,
// against ops. An aggregate ops wrote to but logs does not hold counts as
// empty.
func AuditLogs(ops []Op, logs []Log) Audit {
	var a Audit
	writes := map[string]*writeRecord{}
	for _, op := range ops {
		if !op.write() {
			continue
		}
		if op.Outcome == OK {
			a.Acknowledged++
		}
		if w, ok := writes[op.Batch.ID]; !ok || rank(op) > rank(w.op) {
			writes[op.Batch.ID] = &writeRecord{op: op, found: map[int][]int64{}}
		}
	}
	for _, l := range logs {
		a.Events += len(l.Events)
		a.scan(l, writes)
	}
	for _, w := range writes {
		a.judge(w)
	}
	return a
}

// rank orders outcomes by what they claim, so a batch recorded twice is
// judged by its strongest claim.
func rank(op Op) int {
	switch op.Outcome {
	case OK:
		return 3
	case Ambiguous:
		return 2
	default:
		return 1
	}
}

// scan checks one log's sequences and notes where each batch's events are.
func (a *Audit) scan(l Log, writes map[string]*writeRecord) {
	key := codec.EncodeID(l.ID)
	seqs := map[int64]bool{}
	var top int64 = -1
	for _, ev := range l.Events {
		if ev == nil {
			a.Phantom++
			continue
		}
		if seqs[ev.Sequence] {
			a.Duplicated++
		}
		seqs[ev.Sequence] = true
		top = max(top, ev.Sequence)
		p, ok := decode(ev)
		w := writes[p.Batch]
		if !ok || w == nil || w.op.key() != key || rank(w.op) < 2 ||
			p.Size != w.op.Batch.Size {
			a.Phantom++
			continue
		}
		if len(w.found[p.Index]) > 0 {
			a.Duplicated++
		}
		w.found[p.Index] = append(w.found[p.Index], ev.Sequence)
	}
	for s := range top + 1 {
		if !seqs[s] {
			a.Gaps++
		}
	}
}

// judge counts what is wrong with one OK or Ambiguous write.
func (a *Audit) judge(w *writeRecord) {
	if rank(w.op) < 2 {
		return
	}
	size := w.op.Batch.Size
	if w.op.Outcome == OK {
		for i := range size {
			if len(w.found[i]) == 0 {
				a.Lost++
			}
		}
	}
	if len(w.found) == 0 {
		return
	}
	if !whole(w.found, size) {
		a.Partial++
		return
	}
	first := w.found[0][0]
	switch {
	case w.op.Outcome == Ambiguous:
		a.AmbiguousCommitted++
	case w.op.Expected >= 0 && first != w.op.Expected:
		a.Misplaced++
	}
}

// whole reports whether every event of a batch of size was found, in
// order at consecutive sequences (looking at each event's first copy).
func whole(found map[int][]int64, size int) bool {
	if len(found) != size {
		return false
	}
	for i := range size {
		if found[i][0] != found[0][0]+int64(i) {
			return false
		}
	}
	return true
}

// Resolve returns ops with each Ambiguous write settled by the final logs,
// for a faster linearizability check: one found whole in logs is marked
// Committed, with Expected set to the sequence it was found at; one not
// found at all is dropped, since it never took effect (had it, and been
// lost since, the audit reports it). Partial or duplicated ones are left
// as they are, for the audit to report.
func Resolve(ops []Op, logs []Log) []Op {
	at := map[string]int64{}
	count := map[string]int{}
	for _, l := range logs {
		for _, ev := range l.Events {
			if p, ok := decode(ev); ok {
				count[p.Batch]++
				if p.Index == 0 {
					at[p.Batch] = ev.Sequence
				}
			}
		}
	}
	res := make([]Op, 0, len(ops))
	for _, op := range ops {
		if op.write() && op.Outcome == Ambiguous {
			switch n := count[op.Batch.ID]; {
			case n == 0:
				continue
			case n == op.Batch.Size:
				op.Committed, op.Expected = true, at[op.Batch.ID]
			}
		}
		res = append(res, op)
	}
	return res
}

// Aggregates returns the distinct aggregates ops touched, in the order
// they first appear.
func Aggregates(ops []Op) []timebox.AggregateID {
	seen := map[string]bool{}
	var res []timebox.AggregateID
	for _, op := range ops {
		if k := op.key(); !seen[k] {
			seen[k] = true
			res = append(res, op.Aggregate)
		}
	}
	return res
}

// ReadLogs reads the whole log of every aggregate ops touched from st,
// retrying each read until it succeeds or ctx is done, so a store still
// recovering from a fault gets time to do so.
func ReadLogs(ctx context.Context, st *timebox.Store, ops []Op) ([]Log, error) {
	var res []Log
	for _, id := range Aggregates(ops) {
		evs, err := readAll(ctx, st, id)
		if err != nil {
			return nil, fmt.Errorf("read %q: %w", id, err)
		}
		res = append(res, Log{ID: id, Events: evs})
	}
	return res, nil
}

func readAll(
	ctx context.Context, st *timebox.Store, id timebox.AggregateID,
) ([]*timebox.Event, error) {
	for {
		evs, err := st.GetEventsContext(ctx, id, 0)
		if err == nil || ctx.Err() != nil {
			return evs, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
