// Package timebox is an embeddable event store: it keeps each aggregate's
// history as an append-only log of [Event] values, and runs commands against
// the state that history folds into.
//
// # Opening a store
//
// A backend package ([github.com/kode4food/timebox/memory], redis, postgres
// or raft) provides a [Backend]; [NewStore], or the backend's own NewStore
// method, puts a [Store] on it with a [Config] laid over [DefaultConfig].
//
// # Running commands
//
// An [Executor] loads an aggregate's state (from its cache, or from the
// latest snapshot and the events after it), runs a [Command], and appends the
// events the command raised with [Raise] at the sequence it loaded, so a
// concurrent writer makes the append fail with a [*VersionConflictError]
// instead of interleaving. On a conflict the executor folds in the new events
// and runs the command again, up to [Config.MaxRetries] attempts. Commands on
// one aggregate through one Executor queue up and are committed together, so
// they never fight each other; a queued call honours its context (see
// [Executor.ExecContext]). [Executor.Get] reads a state without a command.
//
// # Strictness
//
// [Raise] applies each event as it is stored (its [Applier] decodes the
// marshalled bytes), so the writer's state equals what any other process
// rebuilds. An event whose payload a [MakeApplier] Applier cannot decode
// fails the load or command with an error wrapping [ErrInvalidEvent],
// unless [Config.SkipUndecodable] asks for the lenient skip; with
// [Config.RequireAppliers], raising a type no Applier handles fails with
// [ErrNoApplier].
//
// # Event identity and metadata
//
// Every stored event has an [Event.ID] (the caller's, or a new UUIDv7 from
// [NewEventID]) and optional [Event.Metadata]; [WithMetadata] puts metadata
// on every event a call raises or appends. An append is idempotent by its
// events' IDs at its sequence, so the Store re-sends one whose reply was
// lost. [WithCommandID] names a command so that a repeat of it on the same
// aggregate is not run again ([Config.CommandWindow]).
//
// # Indexes
//
// An [Indexer] in the Config turns each appended batch into status and label
// changes ([Index]), written in the same atomic step as the events. The
// Store reads them with [Store.GetAggregateStatus],
// [Store.ListAggregatesByStatus], [Store.ListLabelValues] and
// [Store.ListAggregatesByLabel]; [Store.ListAggregates] lists aggregates by
// ID prefix. Their paged forms ([Store.ListAggregatesByStatusPage],
// [Store.ListAggregatesByLabelPage], [Store.ListAggregatesPage]) take a
// limit and a [Cursor] and read one index range per page on backends that
// implement [PagedQueries].
//
// # Tracing and metrics
//
// [Config.Hooks] takes a [Hooks], told of every command, append, conflict,
// load and snapshot; the otel subpackage implements it with OpenTelemetry
// spans and metrics. With no Hooks the cost is a nil check.
//
// # Snapshots and archiving
//
// A snapshot is the JSON of a state at a sequence ([Store.PutSnapshot],
// [Executor.SaveSnapshot]); executors also save one when the events after
// the last outweigh it ([Config.SnapshotRatio]), on a load, or in the
// background once [Config.SnapshotMinEvents] events were committed after
// it, so a busy aggregate's snapshot trails its head by fewer than that
// many events when a burst of commits ends. An executor's snapshot is
// conditional ([SnapshotRequest.IfHead]): stored only while the aggregate
// is live and its head is the sequence the state was folded to, so it
// never resurrects or corrupts an aggregate; a backend that stored nothing
// says so with [ErrSnapshotSkipped], and a background snapshot then tries
// again. With [Config.TrimEvents], events a snapshot
// covers leave live storage. [Store.Archive] moves a whole aggregate into
// the backend's archive as one [ArchiveRecord], atomically, for a consumer
// to process ([Store.ConsumeArchive], at least once); every bundled backend
// implements [Archiver], and a backend that does not returns
// [ErrArchivingDisabled].
//
// # Errors
//
// Every error says whether a call is safe to retry ([ErrClosed] aside):
// a conflict ([ErrVersionConflict]) wrote nothing; an unknown outcome
// ([ErrUnknownOutcome]) may have written, so read before writing again.
// The Store itself retries what is safe: [ErrUnavailable] (nothing sent)
// and, since appends are idempotent by their events' IDs ([Event.ID]), an
// append whose reply was lost, within the call's ctx and
// [Config.RetryTimeout].
package timebox
