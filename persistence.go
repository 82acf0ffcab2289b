package timebox

import (
	"context"
	"encoding/json"
)

type (
	// Backend is what a store needs from its storage: Persistence for the
	// event log and snapshots, Queries for the indexes. A backend may also
	// implement Archiver. The Store validates every argument before it
	// calls a backend, so a backend sees only valid IDs, stamped events
	// and merged index changes. The IDs a backend is given are its own: it
	// may put them in the events it returns.
	Backend interface {
		Persistence
		Queries
	}

	// Persistence stores event logs and snapshots.
	Persistence interface {
		// Close releases the backend; later calls return ErrClosed. A
		// second Close returns nil.
		Close() error

		// Ready is closed once the backend can serve calls.
		Ready() <-chan struct{}

		// NewStore returns a Store on this backend.
		NewStore(Config) (*Store, error)

		// Append atomically writes the request's events and index change
		// if the aggregate's head is req.ExpectedSequence, and otherwise
		// writes nothing and returns a *VersionConflictError holding the
		// events from req.ExpectedSequence to the head.
		Append(ctx context.Context, req AppendRequest) error

		// LoadEvents returns the stored events of id with sequence at
		// least fromSeq, ascending; empty when there are none.
		LoadEvents(ctx context.Context, id AggregateID, fromSeq int64) ([]*Event, error)

		// LoadSnapshot returns the latest snapshot of id and the stored
		// events from its sequence on, in one call.
		LoadSnapshot(ctx context.Context, id AggregateID) (*SnapshotRecord, error)

		// SaveSnapshot stores a snapshot unless a newer one is stored; see
		// Store.PutSnapshot. With req.IfHead it stores the snapshot only if
		// the aggregate is live and its head is exactly req.Sequence, and
		// otherwise writes nothing and returns nil; the check and the write
		// are one atomic step.
		SaveSnapshot(ctx context.Context, req SnapshotRequest) error
	}

	// Queries reads the status and label indexes and the aggregate list.
	// Results need not be sorted: the Store sorts them.
	Queries interface {
		GetAggregateStatus(ctx context.Context, id AggregateID) (string, error)
		ListAggregatesByStatus(ctx context.Context, status string) ([]StatusEntry, error)
		ListLabelValues(ctx context.Context, label string) ([]string, error)
		ListAggregatesByLabel(ctx context.Context, label, value string) ([]AggregateID, error)
		ListAggregates(ctx context.Context, prefix AggregateID) ([]AggregateID, error)
	}

	// Archiver is implemented by backends that can archive aggregates; see
	// Store.Archive and Store.ConsumeArchive. The Store checks the handler
	// before it calls ConsumeArchive.
	Archiver interface {
		Archive(ctx context.Context, id AggregateID) error
		ConsumeArchive(ctx context.Context, handler ArchiveHandler) error
	}

	// AppendRequest is one atomic append.
	AppendRequest struct {
		ID AggregateID
		// ExpectedSequence is the head the aggregate must be at.
		ExpectedSequence int64
		// Events are stamped with ID and sequences ExpectedSequence,
		// ExpectedSequence+1, ...; empty for a check of the head alone.
		Events []*Event
		// Index is written with the events; zero for an empty batch.
		Index IndexChange
	}

	// SnapshotRequest is one snapshot to store.
	SnapshotRequest struct {
		ID       AggregateID
		Data     json.RawMessage
		Sequence int64
		// Trim removes events below Sequence from live storage.
		Trim bool
		// IfHead stores the snapshot only if the aggregate is live (it has
		// events or a snapshot, and was not archived) and its head is
		// exactly Sequence; otherwise nothing is written and SaveSnapshot
		// returns nil. Such a snapshot never moves a head, so a state
		// folded before the aggregate moved on (a stale cache, an archive
		// and a new history) is never stored. Executor snapshots set it;
		// Store.PutSnapshot does not. (The head is the only witness: a
		// history archived and rebuilt to exactly the same head between
		// the load and the save is not told apart.)
		IfHead bool
	}

	// SnapshotRecord is a stored snapshot (Data empty and Sequence 0 when
	// there is none) with the events stored from its sequence on.
	SnapshotRecord struct {
		Data     json.RawMessage
		Sequence int64
		Events   []*Event
	}

	// ArchiveRecord is an archived aggregate: its snapshot byte for byte
	// (empty, sequence 0, when it had none) and its stored events.
	ArchiveRecord struct {
		StreamID         string
		AggregateID      AggregateID
		SnapshotData     json.RawMessage
		SnapshotSequence int64
		Events           []*Event
	}

	// ArchiveHandler processes one archive record. Returning an error keeps
	// the record for the next ConsumeArchive. Records may be delivered more
	// than once, so a handler must be idempotent.
	ArchiveHandler func(context.Context, *ArchiveRecord) error
)
