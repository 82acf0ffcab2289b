package history

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kode4food/timebox"
)

// Recorder issues operations against stores and records each one with its
// outcome and its start and end times. It is safe for concurrent use.
type Recorder struct {
	start   time.Time
	nonce   string
	batches atomic.Int64

	mu  sync.Mutex
	ops []Op
}

// State is the Executor state the recorder's commands run on: the number of
// recorded events the executor has seen.
type State struct{ Events int64 }

// NewRecorder returns an empty Recorder whose clock starts now.
func NewRecorder() *Recorder {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return &Recorder{start: time.Now(), nonce: hex.EncodeToString(b[:])}
}

// NewExecutor returns an Executor for Recorder.Exec on st.
func NewExecutor(st *timebox.Store) *timebox.Executor[State] {
	return timebox.NewExecutor(st, func() State { return State{} },
		timebox.Appliers[State]{
			EventType: func(s State, _ *timebox.Event) State {
				s.Events++
				return s
			},
		},
	)
}

// Now returns the time since the recorder started.
func (r *Recorder) Now() time.Duration {
	return time.Since(r.start)
}

// NewBatch returns a batch of size events with an ID unique to this
// recorder and unlikely to repeat in any other.
func (r *Recorder) NewBatch(size int) Batch {
	return Batch{
		ID:   fmt.Sprintf("%s-%d", r.nonce, r.batches.Add(1)),
		Size: size,
	}
}

// Add records op as given; tests use it to build histories by hand.
func (r *Recorder) Add(op Op) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops = append(r.ops, op)
}

// Ops returns a copy of the recorded operations, in the order they ended.
func (r *Recorder) Ops() []Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ops)
}

// Append appends b to id at expected through st and records the call as
// client's. It returns the store's error.
func (r *Recorder) Append(
	ctx context.Context, st *timebox.Store, client int,
	id timebox.AggregateID, expected int64, b Batch,
) error {
	op := Op{
		Client: client, Aggregate: id.Clone(), Kind: Append,
		Expected: expected, Batch: b, Call: r.Now(),
	}
	err := st.AppendEventsContext(ctx, id, expected, b.Events())
	op.Return = r.Now()
	r.finish(&op, err)
	return err
}

// Exec runs, through ex, a command raising b on id, and records the call
// as client's. It returns the sequence the batch was committed at, which
// is also the recorded Expected, or -1 and the executor's error.
func (r *Recorder) Exec(
	ctx context.Context, ex *timebox.Executor[State], client int,
	id timebox.AggregateID, b Batch,
) (int64, error) {
	op := Op{
		Client: client, Aggregate: id.Clone(), Kind: Exec,
		Expected: -1, Batch: b, Call: r.Now(),
	}
	at := int64(-1)
	_, err := ex.ExecContext(ctx, id, raise(b, &at))
	op.Return = r.Now()
	if err == nil {
		op.Expected = at
	}
	r.finish(&op, err)
	return op.Expected, err
}

// raise returns a command raising b; on success it stores the sequence the
// batch was committed at in at. The success action runs on the caller's
// goroutine once Exec is done with the command.
func raise(b Batch, at *int64) timebox.Command[State] {
	return func(_ State, ag *timebox.Aggregator[State]) error {
		for _, p := range b.payloads() {
			if err := timebox.Raise(ag, EventType, p); err != nil {
				return err
			}
		}
		ag.OnSuccess(func(_ State, evs []*timebox.Event) {
			if len(evs) > 0 {
				*at = evs[0].Sequence
			}
		})
		return nil
	}
}

// Read reads id from sequence from through st and records the call as
// client's. A failed read is recorded as Failed: a read changes nothing.
func (r *Recorder) Read(
	ctx context.Context, st *timebox.Store, client int,
	id timebox.AggregateID, from int64,
) ([]*timebox.Event, error) {
	op := Op{
		Client: client, Aggregate: id.Clone(), Kind: Read, From: from,
		Call: r.Now(),
	}
	evs, err := st.GetEventsContext(ctx, id, from)
	op.Return = r.Now()
	op.Outcome, op.Err = OK, err
	if err != nil {
		op.Outcome = Failed
	} else {
		op.Seen = keys(evs)
	}
	r.Add(op)
	return evs, err
}

// finish sets a write's outcome from err and records it.
func (r *Recorder) finish(op *Op, err error) {
	op.Outcome, op.Err = Classify(err), err
	var vc *timebox.VersionConflictError
	if op.Kind == Append && errors.As(err, &vc) {
		op.Actual = vc.ActualSequence
		op.Seen = keys(vc.NewEvents)
	}
	r.Add(*op)
}
