package timebox

import (
	"context"
	"encoding/json"
	"time"
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
		// otherwise writes nothing and returns ErrSnapshotSkipped (possibly
		// wrapped); the check and the write are one atomic step. A backend
		// written before ErrSnapshotSkipped returns nil there, which the
		// Store takes as stored: it still works, but an Executor's
		// background snapshot then cannot tell that it must try again.
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

	// Feeder is implemented by backends with a store-wide feed: every
	// committed event in Position order. See Store.ReadAll and
	// Store.Subscribe.
	Feeder interface {
		// ReadFeed returns up to req.Limit events with a Position after
		// req.After, in Position order, each with its Position set, and
		// their other fields as GetEvents returns them. The read is
		// gap-safe: once it has returned an event at position p, no event
		// at a position at or before p becomes visible to a later read.
		// Trimming and archiving never remove events from the feed. When
		// there is no such event and req.Wait is positive, it waits until
		// there may be one, req.Wait passes or ctx ends, and then returns
		// what there is (maybe nothing, with a nil error; ctx's error if
		// ctx ended).
		ReadFeed(ctx context.Context, req FeedRequest) ([]*Event, error)
	}

	// FeedRequest is one read of a store's feed.
	FeedRequest struct {
		After Position
		Limit int
		Wait  time.Duration
	}

	// ConsumerBackend keeps durable consumers' checkpoints and leases in
	// the backend; see Store.Consume. Each partition of a consumer has its
	// own checkpoint and lease. Lease times are the backend's clock.
	ConsumerBackend interface {
		// ClaimPartition gives the partition's lease to l.Owner for l.TTL
		// from now, creating the consumer (every partition, checkpoints
		// at the zero Position, a new Epoch) if it does not exist, and
		// returns the partition's checkpoint and the consumer's Epoch. It
		// succeeds when the partition has no owner, its lease has
		// expired, or l.Owner holds it already (renewal). It returns
		// ErrLeaseHeld when another owner's lease is live, and
		// ErrPartitionMismatch when the consumer exists with another
		// partition count; either writes nothing.
		ClaimPartition(ctx context.Context, l Lease) (Claim, error)

		// CommitPartition sets the partition's checkpoint to pos and
		// extends the lease by l.TTL from now, if l.Owner holds the lease
		// (even an expired one nobody has claimed since). Otherwise it
		// writes nothing and returns ErrLeaseLost: the consumer was
		// claimed by another owner, reset or deleted.
		CommitPartition(ctx context.Context, l Lease, pos Position) error

		// ReleasePartition ends l.Owner's lease, keeping the checkpoint,
		// so another owner can claim it at once. It returns nil when
		// l.Owner does not hold the lease.
		ReleasePartition(ctx context.Context, l Lease) error

		// ListConsumers returns every consumer with its partitions. The
		// order need not be sorted: the Store sorts by name.
		ListConsumers(ctx context.Context) ([]ConsumerInfo, error)

		// ResetConsumer sets every partition's checkpoint to pos, gives
		// the consumer a new Epoch and ends every lease, so running owners
		// lose their leases (their next commit returns ErrLeaseLost) and
		// resume from pos once they claim again. ErrConsumerNotFound when
		// there is no such consumer.
		ResetConsumer(ctx context.Context, name string, pos Position) error

		// DeleteConsumer removes the consumer's checkpoints and leases.
		// ErrConsumerNotFound when there is no such consumer.
		DeleteConsumer(ctx context.Context, name string) error
	}

	// Lease names one partition of a durable consumer and who claims it.
	Lease struct {
		Consumer   string
		Partition  int
		Partitions int
		Owner      string
		TTL        time.Duration
	}

	// Claim is what ClaimPartition found: the partition's checkpoint,
	// and the consumer's Epoch, which names its current incarnation. A
	// consumer's Epoch is set when it is created and changes on every
	// ResetConsumer; one created again after DeleteConsumer never gets
	// an Epoch it had before (a counter kept by the backend apart from
	// its consumers, say). So two claims that return the same Epoch
	// have no reset or delete between them, whichever process made it,
	// even a reset to the very checkpoint found.
	Claim struct {
		Checkpoint Position
		Epoch      uint64
	}

	// ConsumerInfo is a durable consumer as stored.
	ConsumerInfo struct {
		Name       string
		Partitions []PartitionInfo
	}

	// PartitionInfo is one partition of a durable consumer: its
	// checkpoint (the Position of the last event it has handled) and its
	// lease (Owner empty when nobody holds it; a lease whose Expires has
	// passed may be claimed).
	PartitionInfo struct {
		Partition  int
		Checkpoint Position
		Owner      string
		Expires    time.Time
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
		// returns ErrSnapshotSkipped (nil from a backend that predates
		// it). Such a snapshot never moves a head, so a state
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
