package timebox

import (
	"errors"
	"fmt"
)

// Errors fall in three classes, and each sentinel's comment says which:
//   - safe to retry: nothing was written, the same call may be made again;
//   - conflict: nothing was written because the aggregate moved on; reload
//     and decide again (the Executor does this for you);
//   - outcome unknown: the write may or may not have happened; read the
//     aggregate before deciding what to do.
var (
	// ErrVersionConflict is matched by errors.Is on every
	// *VersionConflictError. Conflict class: nothing was written.
	ErrVersionConflict = errors.New("version conflict")

	// ErrMaxRetriesExceeded means the Executor gave up after
	// Config.MaxRetries attempts, each lost to a concurrent writer. Nothing
	// of the command was written; it is safe to run the command again.
	ErrMaxRetriesExceeded = errors.New("max retries exceeded")

	// ErrClosed is returned by every call on a Store or backend after Close.
	// Open a new one; retrying on the closed value never succeeds.
	ErrClosed = errors.New("store is closed")

	// ErrInvalidAggregateID means an aggregate ID had no parts or an empty
	// part. Nothing was written; fix the ID.
	ErrInvalidAggregateID = errors.New("invalid aggregate ID")

	// ErrInvalidEvent means an event was nil, had an empty Type or Data that
	// is not valid JSON. Nothing of its batch was written; fix the event.
	// An Executor also returns it, naming the event's type and sequence and
	// the decode error, for a stored or raised event whose Applier cannot
	// decode its Data (see MakeApplier and Config.SkipUndecodable): nothing
	// was written, and retrying does not help until the Applier or the
	// data is fixed.
	ErrInvalidEvent = errors.New("invalid event")

	// ErrNoApplier is returned by Raise, with Config.RequireAppliers, for
	// an event type the Executor has no Applier for (a typo'd type would
	// otherwise be stored and ignored). Nothing was raised; fix the type or
	// register its Applier.
	ErrNoApplier = errors.New("no applier for event type")

	// ErrInvalidSequence means a negative sequence was given, or an append
	// whose events would take an aggregate past sequence math.MaxInt64
	// (after a snapshot there, say). Nothing was written.
	ErrInvalidSequence = errors.New("invalid sequence")

	// ErrUnknownOutcome means a write was sent but its result was lost (a
	// connection dropped after sending, or Raft leadership was lost while
	// the entry was being committed), and stayed unknown: the Store
	// re-sends an append whose outcome is unknown (the re-send is
	// idempotent, see Store.AppendEventsContext) until it learns the
	// outcome, so a caller sees this error only when the backend stayed
	// unreachable until ctx ended or Config.RetryTimeout passed. The write
	// may or may not have happened: read the aggregate, looking for the
	// events' IDs, before deciding to write again.
	ErrUnknownOutcome = errors.New("outcome of write unknown")

	// ErrUnavailable means the backend could not be reached and the call
	// was not sent (a refused or failed connection, no leader to forward
	// to). Safe to retry: nothing was written. The Store retries such
	// errors itself until ctx ends or Config.RetryTimeout passes, so a
	// caller sees it only for an outage that outlasts both.
	ErrUnavailable = errors.New("backend unavailable")

	// ErrArchivingDisabled is returned by Archive and ConsumeArchive when the
	// backend does not support archiving. Retrying does not help.
	ErrArchivingDisabled = errors.New("archiving is not supported by this backend")

	// ErrArchiveHandlerMissing is returned by ConsumeArchive for a nil
	// handler. Nothing was consumed.
	ErrArchiveHandlerMissing = errors.New("archive handler is required")

	// ErrArchiveRecordMalformed means an archive record could not be
	// decoded. ConsumeArchive returns it and takes the record out of the
	// consumers' way, so it is not delivered again: each backend's README
	// section says where a malformed record is kept for inspection.
	ErrArchiveRecordMalformed = errors.New("archive record is malformed")

	// ErrBackendRequired is returned by NewStore for a nil Backend.
	ErrBackendRequired = errors.New("backend is required")

	// ErrInvalidSnapshotRatio means Config.SnapshotRatio is negative or
	// NaN (math.Inf(1) is valid: only the first snapshot).
	ErrInvalidSnapshotRatio = errors.New("snapshot ratio must be a number, not negative")

	// ErrInvalidMaxRetries means Config.MaxRetries is zero or negative.
	ErrInvalidMaxRetries = errors.New("max retries must be positive")

	// ErrInvalidCacheSize means Config.CacheSize is zero or negative.
	ErrInvalidCacheSize = errors.New("cache size must be positive")

	// ErrInvalidSnapshotMinEvents means Config.SnapshotMinEvents is
	// negative.
	ErrInvalidSnapshotMinEvents = errors.New("snapshot min events must not be negative")

	// ErrInvalidCommandWindow means Config.CommandWindow is negative.
	ErrInvalidCommandWindow = errors.New("command window must not be negative")

	// ErrSnapshotSkipped is returned, possibly wrapped, by a backend's
	// SaveSnapshot with SnapshotRequest.IfHead when it wrote nothing
	// because the aggregate is not live or its head is not req.Sequence.
	// A backend that returns nil instead is taken as having stored the
	// snapshot (the contract before this error existed). The Store and
	// Executor turn it into nil wherever they promise nil for a snapshot
	// that was not needed (Executor.SaveSnapshot, the snapshot after a
	// load); an Executor's background snapshot uses it to know that it
	// must try again.
	ErrSnapshotSkipped = errors.New("conditional snapshot skipped")

	// ErrReentrantExec means a command called Exec on its own aggregate
	// through the Executor running it, from the goroutine running it, or
	// an Exec through that Executor would close a cycle of commands
	// waiting for each other (X's command Execs Y, whose command Execs
	// X); the call would wait for itself. Nothing was written for the
	// inner call, and the outer command goes on. Raise the events in the
	// command itself instead (Get from a command is fine).
	ErrReentrantExec = errors.New("command executes on its own aggregate")

	// ErrCommandPanicked is matched by the *PanicError of a command that
	// panicked: nothing of the command was written, the others of its batch
	// go on, and the aggregate stays usable. It is also matched by the error
	// of the calls batched with a command that called runtime.Goexit, for
	// which nothing was written.
	ErrCommandPanicked = errors.New("command panicked")

	// ErrApplierPanicked is matched by the *PanicError of an Applier that
	// panicked, during a load, a catch-up after a conflict, or Raise.
	// Nothing was written; fix the applier.
	ErrApplierPanicked = errors.New("applier panicked")

	// ErrIndexerPanicked is matched by the *PanicError of a Config.Indexer
	// that panicked. Nothing of the batch was written.
	ErrIndexerPanicked = errors.New("indexer panicked")

	// ErrConstructorPanicked is matched by the *PanicError of an
	// Executor's construct function that panicked. Nothing was written.
	ErrConstructorPanicked = errors.New("constructor panicked")

	// ErrHandlerPanicked is matched by the *PanicError of a Subscribe or
	// Consume handler that panicked, which they return as they return a
	// handler's error (Consume's checkpoint stays before that event, its
	// leases released), and by Consume's error when a handler called
	// runtime.Goexit.
	ErrHandlerPanicked = errors.New("feed handler panicked")
)

// VersionConflictError reports that an append expected the aggregate's head
// at ExpectedSequence but found it at ActualSequence. Nothing was written.
// NewEvents holds the stored events from ExpectedSequence up to the head, in
// order, so a caller can catch up without another read; it is empty when
// ExpectedSequence was ahead of the head.
type VersionConflictError struct {
	ExpectedSequence int64
	ActualSequence   int64
	NewEvents        []*Event
}

// Error implements error.
func (e *VersionConflictError) Error() string {
	return fmt.Sprintf(
		"version conflict: expected sequence %d, but at %d (%d new events)",
		e.ExpectedSequence, e.ActualSequence, len(e.NewEvents),
	)
}

// Is makes errors.Is(err, ErrVersionConflict) true.
func (e *VersionConflictError) Is(target error) bool {
	return target == ErrVersionConflict
}

// PanicError is a panic recovered from user code the library calls. Kind
// names the component (ErrCommandPanicked, ErrApplierPanicked,
// ErrIndexerPanicked or ErrConstructorPanicked) and errors.Is matches it;
// when the panic value is an error, errors.Is and errors.As reach it too.
// Stack is the panicking goroutine's stack, also logged once at ERROR
// through Config.Logger (empty for the calls batched with a command that
// called runtime.Goexit). Nothing was written by the failed call.
type PanicError struct {
	Kind  error
	Value any
	Stack []byte
}

// Error implements error.
func (e *PanicError) Error() string {
	return fmt.Sprintf("%v: %v", e.Kind, e.Value)
}

// Is makes errors.Is(err, e.Kind) true.
func (e *PanicError) Is(target error) bool {
	return target == e.Kind
}

// Unwrap returns the panic value when it is an error, else nil.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}
