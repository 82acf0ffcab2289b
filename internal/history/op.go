package history

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/codec"
)

// Kind says what an operation did.
type Kind uint8

// Operation kinds.
const (
	// Append is Store.AppendEvents of one batch at Op.Expected.
	Append Kind = iota + 1
	// Exec is Executor.Exec of a command raising one batch; the executor
	// appends it at whatever the head is when the command runs.
	Exec
	// Read is Store.GetEvents from Op.From.
	Read
)

// Outcome is how an operation ended, as far as its caller can tell.
type Outcome uint8

// Operation outcomes.
const (
	// OK: the call succeeded; a write's batch is acknowledged.
	OK Outcome = iota + 1
	// Conflict: a version conflict (for Exec, retries exhausted); nothing
	// was written.
	Conflict
	// Failed: an error that promises nothing was written.
	Failed
	// Ambiguous: the write may or may not have happened (ErrUnknownOutcome,
	// a timeout, a cut connection). It is modelled as possibly taking effect
	// at any later time.
	Ambiguous
)

// EventType is the type of every event the recorder writes.
const EventType timebox.EventType = "history"

var (
	kindNames    = map[Kind]string{Append: "append", Exec: "exec", Read: "read"}
	outcomeNames = map[Outcome]string{
		OK: "ok", Conflict: "conflict", Failed: "failed", Ambiguous: "ambiguous",
	}
)

// String implements fmt.Stringer.
func (k Kind) String() string { return kindNames[k] }

// String implements fmt.Stringer.
func (o Outcome) String() string { return outcomeNames[o] }

// Batch is a batch of events with a unique ID; event i carries the payload
// {"b": ID, "i": i, "n": Size}, so every event in every log is traceable
// to the one operation that wrote it.
type Batch struct {
	ID   string
	Size int
}

// payload is the data of every recorded event.
type payload struct {
	Batch string `json:"b"`
	Index int    `json:"i"`
	Size  int    `json:"n"`
}

func (p payload) key() string { return eventKey(p.Batch, p.Index) }

func eventKey(batch string, i int) string { return fmt.Sprintf("%s.%d", batch, i) }

// Keys returns the unique keys of the batch's events, in order.
func (b Batch) Keys() []string {
	keys := make([]string, b.Size)
	for i := range keys {
		keys[i] = eventKey(b.ID, i)
	}
	return keys
}

// Events returns the batch as events ready for AppendEvents.
func (b Batch) Events() []*timebox.Event {
	now := time.Now()
	evs := make([]*timebox.Event, b.Size)
	for i, p := range b.payloads() {
		data, _ := json.Marshal(p)
		evs[i] = &timebox.Event{Timestamp: now, Type: EventType, Data: data}
	}
	return evs
}

func (b Batch) payloads() []payload {
	res := make([]payload, b.Size)
	for i := range res {
		res[i] = payload{Batch: b.ID, Index: i, Size: b.Size}
	}
	return res
}

// decode returns the payload of a recorded event, or false for an event
// the recorder did not write.
func decode(ev *timebox.Event) (payload, bool) {
	var p payload
	if ev == nil || ev.Type != EventType || json.Unmarshal(ev.Data, &p) != nil {
		return p, false
	}
	return p, p.Batch != "" && p.Index >= 0 && p.Index < p.Size
}

// keys returns the keys of evs; an event the recorder did not write gets a
// key no batch has.
func keys(evs []*timebox.Event) []string {
	res := make([]string, len(evs))
	for i, ev := range evs {
		p, ok := decode(ev)
		if !ok {
			res[i] = fmt.Sprintf("?foreign@%d", i)
			continue
		}
		res[i] = p.key()
	}
	return res
}

// Op is one recorded operation. Call and Return are offsets from the
// recorder's start on the monotonic clock.
type Op struct {
	Client    int
	Aggregate timebox.AggregateID
	Kind      Kind
	// Expected is the sequence an Append was made at. For an Exec it is
	// the sequence its events got when OK (as the success action saw
	// them), and -1 otherwise: the executor's choice is not visible.
	Expected int64
	// From is the sequence a Read started at.
	From    int64
	Batch   Batch
	Outcome Outcome
	// Actual is the head a Conflict reported.
	Actual int64
	// Seen are the event keys a Read returned, or a Conflict's NewEvents.
	Seen []string
	// Committed marks an Ambiguous write that Resolve found in the final
	// log at Expected.
	Committed bool
	Err       error
	Call      time.Duration
	Return    time.Duration
}

// write reports whether op is an Append or an Exec.
func (op Op) write() bool { return op.Kind == Append || op.Kind == Exec }

func (op Op) key() string { return codec.EncodeID(op.Aggregate) }

// String describes op for logs.
func (op Op) String() string {
	s := fmt.Sprintf("c%d %s %q", op.Client, op.Kind, op.Aggregate)
	switch op.Kind {
	case Append:
		s += fmt.Sprintf(" at %d %s×%d", op.Expected, op.Batch.ID, op.Batch.Size)
	case Exec:
		s += fmt.Sprintf(" %s×%d (at %d)", op.Batch.ID, op.Batch.Size, op.Expected)
	case Read:
		s += fmt.Sprintf(" from %d: %d events", op.From, len(op.Seen))
	}
	s += " -> " + op.Outcome.String()
	if op.Outcome == Conflict && op.Kind == Append {
		s += fmt.Sprintf(" (head %d)", op.Actual)
	}
	if op.Err != nil {
		s += ": " + op.Err.Error()
	}
	return s
}

// Classify maps a call's error to its Outcome as the README's error table
// lets a caller read it: nil is OK; a version conflict or
// ErrMaxRetriesExceeded is Conflict; ErrUnknownOutcome is Ambiguous;
// ErrUnavailable and a context's error without ErrUnknownOutcome are
// Failed (nothing was written: the call's deadline passed before it
// sent, or while the backend knew it had not applied what it sent); a
// bare network error (a cut connection, EOF, reset), which a backend
// should have wrapped, is Ambiguous; anything else is Failed. A Failed
// write is a promise that nothing was written, which the audit holds the
// backend to.
func Classify(err error) Outcome {
	switch {
	case err == nil:
		return OK
	case errors.Is(err, timebox.ErrMaxRetriesExceeded),
		errors.Is(err, timebox.ErrVersionConflict):
		return Conflict
	case errors.Is(err, timebox.ErrUnknownOutcome):
		return Ambiguous
	case errors.Is(err, timebox.ErrUnavailable),
		errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, context.Canceled):
		return Failed
	case ambiguous(err):
		return Ambiguous
	default:
		return Failed
	}
}

func ambiguous(err error) bool {
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.As(err, &ne)
}
