package timebox

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
)

// Store is an event store on a Backend. It validates every call, assigns
// sequences, runs the Indexer, and sorts query results; the backend does
// the atomic work. A Store is safe for concurrent use.
type Store struct {
	backend Backend
	config  Config
	closed  atomic.Bool
	done    chan struct{} // closed by Close: waits in the Store end

	// Background work (Executors' snapshots after commits), which Close
	// cancels and waits for; see Store.background.
	bgMu   sync.Mutex
	bg     sync.WaitGroup
	bgCtx  context.Context
	bgStop context.CancelFunc

	// The durable consumers running in this Store, by name and owner
	// (Consume refuses a second run of a pair).
	consumingMu sync.Mutex
	consuming   map[[2]string]bool
}

// NewStore returns a Store on b, with cfg laid over DefaultConfig. It
// returns ErrBackendRequired for a nil b, or the config's validation error.
// The Store owns b: Store.Close closes it.
func NewStore(b Backend, cfg Config) (*Store, error) {
	if b == nil {
		return nil, ErrBackendRequired
	}
	cfg = Configure(DefaultConfig(), cfg)
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Store{backend: b, config: cfg, done: make(chan struct{})}, nil
}

// Config returns the configuration in use, defaults applied.
func (s *Store) Config() Config {
	return s.config
}

// Ready is closed once the backend can serve calls.
func (s *Store) Ready() <-chan struct{} {
	return s.backend.Ready()
}

// WaitReady blocks until the store is ready, returning nil, or until ctx is
// done, returning ctx's error.
func (s *Store) WaitReady(ctx context.Context) error {
	if s.closed.Load() {
		return ErrClosed
	}
	select {
	case <-s.backend.Ready():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close closes the store and its backend. It first cancels the background
// snapshots Executors may be saving and waits for them to end. Later calls
// return an error matching ErrClosed; a second Close returns nil.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	close(s.done)
	s.stopBackground()
	return s.backend.Close()
}

// AppendEvents is AppendEventsContext with context.Background().
func (s *Store) AppendEvents(id AggregateID, atSeq int64, evs []*Event) error {
	return s.AppendEventsContext(context.Background(), id, atSeq, evs)
}

// AppendEventsContext atomically appends evs to id at sequences atSeq,
// atSeq+1, ... if the aggregate's head (its next sequence, 0 when new) is
// atSeq, together with the Indexer's result for the batch. The caller's
// events are not modified. Otherwise nothing is written and the error is a
// *VersionConflictError. An empty batch writes nothing but is still checked
// against the head.
//
// The stored events get ctx's metadata (WithMetadata) under their own, and
// a new ID (NewEventID) each when they have none. The append is
// idempotent: when the events stored from atSeq on have the batch's IDs,
// in order, the batch is already there and the call succeeds without
// writing again. So an append whose outcome was unknown can be sent again
// with the same event IDs, and the Store itself re-sends one when the
// backend loses its reply, or retries one the backend could not take
// (ErrUnavailable), with jittered backoff until ctx ends or
// Config.RetryTimeout passes.
//
// Errors: ErrInvalidAggregateID, ErrInvalidSequence (a negative atSeq,
// or events at the head whose sequences would pass math.MaxInt64),
// ErrInvalidEvent
// (nothing written), *VersionConflictError, ErrUnknownOutcome (the
// backend stayed unreachable after the append was sent: it may or may not
// have happened), ErrUnavailable (nothing was sent), ctx's error
// (context.DeadlineExceeded or context.Canceled; nothing written when ctx
// was done before the call), a *PanicError matching ErrIndexerPanicked,
// ErrClosed, or the backend's error.
func (s *Store) AppendEventsContext(
	ctx context.Context, id AggregateID, atSeq int64, evs []*Event,
) error {
	if err := s.check(id); err != nil {
		return err
	}
	if atSeq < 0 {
		return fmt.Errorf("%w: append at %d", ErrInvalidSequence, atSeq)
	}
	req := AppendRequest{
		ID:               id.Clone(),
		ExpectedSequence: atSeq,
		Events:           make([]*Event, len(evs)),
	}
	md := MetadataFrom(ctx)
	block := make([]Event, len(evs))
	for i, ev := range evs {
		if err := ev.validate(); err != nil {
			return fmt.Errorf("event %d: %w", i, err)
		}
		ev.stampInto(&block[i], req.ID, atSeq+int64(i), md)
		req.Events[i] = &block[i]
	}
	return s.appendObserved(ctx, req)
}

// append gives req's events, which are valid, stamped and the Store's to
// change, an ID each when they have none, runs the Indexer over them, and
// hands req to the backend, retrying transient errors (see retry). A
// conflict that shows req's events already stored is a success. A ctx
// already done fails the call with its error before anything is sent; an
// Indexer panic fails it with a *PanicError (ErrIndexerPanicked). It
// also returns how many sends that took (see AppendDone).
func (s *Store) append(ctx context.Context, req AppendRequest) (appendSent, error) {
	var sent appendSent
	if err := ctx.Err(); err != nil {
		return sent, err
	}
	if n := int64(len(req.Events)); req.ExpectedSequence > math.MaxInt64-n {
		// The events cannot fit; a head elsewhere is still a conflict, as
		// for any append at a sequence other than the head.
		check := AppendRequest{ID: req.ID, ExpectedSequence: req.ExpectedSequence}
		if sent, err := s.append(ctx, check); err != nil {
			return sent, err
		}
		return sent, fmt.Errorf("%w: %d events at %d would pass the largest sequence",
			ErrInvalidSequence, n, req.ExpectedSequence)
	}
	setEventIDs(req.Events)
	if len(req.Events) > 0 && s.config.Indexer != nil {
		ix, err := s.index(req)
		if err != nil {
			return sent, err
		}
		req.Index = ix
	}
	err := s.retry(ctx, true, func() error {
		sent.sends++
		err := s.backend.Append(ctx, req)
		if err == nil {
			return nil
		}
		err = settle(req, err)
		sent.settled = err == nil
		return err
	})
	return sent, err
}

// appendSent is what an append took to send: how many sends, and whether
// one found it stored already (see AppendDone).
type appendSent struct {
	sends   int
	settled bool
}

// settle returns nil for a conflict whose stored events from the expected
// sequence on start with req's events, by ID: req was appended already (a
// re-send after a lost reply). Any other err is returned as is.
func settle(req AppendRequest, err error) error {
	var vc *VersionConflictError
	if len(req.Events) == 0 || !errors.As(err, &vc) ||
		vc.ExpectedSequence != req.ExpectedSequence ||
		len(vc.NewEvents) < len(req.Events) {
		return err
	}
	for i, ev := range req.Events {
		got := vc.NewEvents[i]
		if got.ID != ev.ID || got.Sequence != ev.Sequence {
			return err
		}
	}
	return nil
}

// index runs the Indexer over req's events, recovering a panic.
func (s *Store) index(req AppendRequest) (ix IndexChange, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = recovered(s.config.logger(), ErrIndexerPanicked, r, req.ID)
		}
	}()
	return mergeIndexes(req.Events, s.config.Indexer(req.Events)), nil
}

// GetEvents is GetEventsContext with context.Background().
func (s *Store) GetEvents(id AggregateID, fromSeq int64) ([]*Event, error) {
	return s.GetEventsContext(context.Background(), id, fromSeq)
}

// GetEventsContext returns the stored events of id with sequence at least
// fromSeq, ascending. It returns an empty slice for an unknown aggregate or
// a fromSeq at or past the head. A stored event that cannot be decoded is
// an error. ErrUnavailable is retried as by AppendEventsContext.
func (s *Store) GetEventsContext(
	ctx context.Context, id AggregateID, fromSeq int64,
) ([]*Event, error) {
	if err := s.check(id); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var evs []*Event
	err := s.retry(ctx, false, func() (err error) {
		evs, err = s.backend.LoadEvents(ctx, id.Clone(), max(fromSeq, 0))
		return err
	})
	if err != nil || evs == nil {
		return []*Event{}, err
	}
	return evs, nil
}

// GetAggregateStatus is GetAggregateStatusContext with
// context.Background().
func (s *Store) GetAggregateStatus(id AggregateID) (string, error) {
	return s.GetAggregateStatusContext(context.Background(), id)
}

// GetAggregateStatusContext returns id's status, "" when it has none or is
// unknown.
func (s *Store) GetAggregateStatusContext(
	ctx context.Context, id AggregateID,
) (string, error) {
	if err := s.check(id); err != nil {
		return "", err
	}
	return s.backend.GetAggregateStatus(ctx, id)
}

// ListAggregatesByStatus is ListAggregatesByStatusContext with
// context.Background().
func (s *Store) ListAggregatesByStatus(status string) ([]StatusEntry, error) {
	return s.ListAggregatesByStatusContext(context.Background(), status)
}

// ListAggregatesByStatusContext returns the aggregates in status with the
// time each entered it, ordered by that time and then by ID.
func (s *Store) ListAggregatesByStatusContext(
	ctx context.Context, status string,
) ([]StatusEntry, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	res, err := s.backend.ListAggregatesByStatus(ctx, status)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(res, func(a, b StatusEntry) int {
		if c := a.Timestamp.Compare(b.Timestamp); c != 0 {
			return c
		}
		return a.ID.Compare(b.ID)
	})
	return nonNil(res), nil
}

// ListLabelValues is ListLabelValuesContext with context.Background().
func (s *Store) ListLabelValues(label string) ([]string, error) {
	return s.ListLabelValuesContext(context.Background(), label)
}

// ListLabelValuesContext returns the distinct values label currently has on
// any aggregate, sorted.
func (s *Store) ListLabelValuesContext(
	ctx context.Context, label string,
) ([]string, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	res, err := s.backend.ListLabelValues(ctx, label)
	if err != nil {
		return nil, err
	}
	slices.Sort(res)
	return nonNil(res), nil
}

// ListAggregatesByLabel is ListAggregatesByLabelContext with
// context.Background().
func (s *Store) ListAggregatesByLabel(label, value string) ([]AggregateID, error) {
	return s.ListAggregatesByLabelContext(context.Background(), label, value)
}

// ListAggregatesByLabelContext returns the aggregates whose label has
// value, sorted by ID.
func (s *Store) ListAggregatesByLabelContext(
	ctx context.Context, label, value string,
) ([]AggregateID, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	res, err := s.backend.ListAggregatesByLabel(ctx, label, value)
	return sortedIDs(res, err)
}

// ListAggregates is ListAggregatesContext with context.Background().
func (s *Store) ListAggregates(prefix AggregateID) ([]AggregateID, error) {
	return s.ListAggregatesContext(context.Background(), prefix)
}

// ListAggregatesContext returns every live aggregate whose ID starts with
// the whole parts of prefix (nil lists all), sorted by ID. An aggregate
// with only a snapshot, or whose events were all trimmed, is listed.
func (s *Store) ListAggregatesContext(
	ctx context.Context, prefix AggregateID,
) ([]AggregateID, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	if len(prefix) > 0 {
		if err := prefix.Validate(); err != nil {
			return nil, err
		}
	}
	res, err := s.backend.ListAggregates(ctx, prefix)
	return sortedIDs(res, err)
}

// Archive is ArchiveContext with context.Background().
func (s *Store) Archive(id AggregateID) error {
	return s.ArchiveContext(context.Background(), id)
}

// ArchiveContext moves id's snapshot and events into the backend's archive
// as one ArchiveRecord and removes its live records, status and labels,
// atomically. Archiving an unknown aggregate does nothing. It returns
// ErrArchivingDisabled when the backend cannot archive, and ctx's error,
// archiving nothing, when ctx is already done.
func (s *Store) ArchiveContext(ctx context.Context, id AggregateID) error {
	if err := s.check(id); err != nil {
		return err
	}
	a, ok := s.backend.(Archiver)
	if !ok {
		return ErrArchivingDisabled
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return a.Archive(ctx, id)
}

// ConsumeArchive blocks until one archive record has been given to handler,
// and returns the handler's result, or until ctx is done, returning an
// error matching ctx's. A handler error keeps the record for the next
// call. It returns ErrArchivingDisabled when the backend cannot archive and
// ErrArchiveHandlerMissing for a nil handler.
func (s *Store) ConsumeArchive(ctx context.Context, handler ArchiveHandler) error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	a, ok := s.backend.(Archiver)
	if !ok {
		return ErrArchivingDisabled
	}
	if handler == nil {
		return ErrArchiveHandlerMissing
	}
	return a.ConsumeArchive(ctx, handler)
}

func (s *Store) checkOpen() error {
	if s.closed.Load() {
		return ErrClosed
	}
	return nil
}

func (s *Store) check(id AggregateID) error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	return id.Validate()
}

func sortedIDs(ids []AggregateID, err error) ([]AggregateID, error) {
	if err != nil {
		return nil, err
	}
	slices.SortFunc(ids, AggregateID.Compare)
	return nonNil(ids), nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
