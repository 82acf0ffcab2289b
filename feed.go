package timebox

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"
)

type (
	// FeedHandler handles one event of a store's feed (Store.Subscribe,
	// Store.Consume). Returning an error stops the subscription or
	// consumer, which returns that error; the event is not counted as
	// handled.
	FeedHandler func(ctx context.Context, ev *Event) error

	// FeedOption configures Store.Subscribe and Store.Consume.
	FeedOption func(*feedOptions)

	feedOptions struct {
		types      []EventType
		prefix     AggregateID
		batch      int
		partitions int
		limit      int
		ttl        time.Duration
		owner      *string
		consumer   bool // a consumer-only option was given
	}
)

// Defaults of the feed options.
const (
	DefaultFeedBatch  = 256
	DefaultLeaseTTL   = 5 * time.Second
	maxConsumerName   = 200
	feedWait          = time.Second
	releaseTimeout    = 5 * time.Second
	minLeaseTTL       = 100 * time.Millisecond
	maxFeedPartitions = 1024
)

var (
	// ErrFeedNotSupported is returned by the feed calls when the backend
	// has no feed (it implements neither Feeder nor ConsumerBackend).
	// Every backend of this module has one.
	ErrFeedNotSupported = errors.New("feed is not supported by this backend")

	// ErrInvalidPosition means a Position's text form could not be read.
	ErrInvalidPosition = errors.New("invalid feed position")

	// ErrInvalidConsumer means a consumer name, owner, handler or option
	// was invalid (an empty name or owner, or one longer than 200 bytes,
	// not UTF-8 or holding a NUL byte; a nil handler; partitions outside
	// 1..1024 or a negative partition limit; a lease shorter than 100 ms; a consumer option given to
	// Subscribe). Nothing was read or written.
	ErrInvalidConsumer = errors.New("invalid consumer")

	// ErrLeaseHeld is returned by ConsumerBackend.ClaimPartition when
	// another owner's lease on the partition is live. Store.Consume waits
	// for such a lease to end rather than returning it.
	ErrLeaseHeld = errors.New("consumer partition is leased by another owner")

	// ErrLeaseLost means an owner committed to a partition it no longer
	// holds: its lease expired and another owner claimed it, or the
	// consumer was reset or deleted. Nothing was written. Store.Consume
	// claims the partition again rather than returning it.
	ErrLeaseLost = errors.New("consumer partition lease lost")

	// ErrConsumerNotFound is returned by ResetConsumer and DeleteConsumer
	// for a consumer that does not exist.
	ErrConsumerNotFound = errors.New("consumer not found")

	// ErrPartitionMismatch means Consume was called with a partition count
	// other than the one the consumer was created with. Delete the
	// consumer (or use another name) to change it.
	ErrPartitionMismatch = errors.New("consumer partition count mismatch")
)

// WithEventTypes delivers only events of the given types.
func WithEventTypes(types ...EventType) FeedOption {
	return func(o *feedOptions) { o.types = append(o.types, types...) }
}

// WithAggregatePrefix delivers only events of aggregates whose ID has
// prefix (AggregateID.HasPrefix); an empty prefix selects every aggregate,
// one with an empty part none (Subscribe and Consume refuse it with
// ErrInvalidAggregateID).
func WithAggregatePrefix(prefix AggregateID) FeedOption {
	return func(o *feedOptions) { o.prefix = prefix.Clone() }
}

// WithBatchSize sets how many events one read of the feed returns at most
// (DefaultFeedBatch). A durable consumer commits its checkpoint after each
// batch, so it is also the most events redelivered after a crash.
func WithBatchSize(n int) FeedOption {
	return func(o *feedOptions) { o.batch = n }
}

// WithPartitions splits a durable consumer into n partitions by aggregate
// (PartitionOf), each with its own checkpoint and lease, so that several
// processes running the consumer share the work while each aggregate's
// events stay in order. A process's Consume claims every partition it
// can, and handles its partitions concurrently. Consume only; default 1.
func WithPartitions(n int) FeedOption {
	return func(o *feedOptions) { o.partitions, o.consumer = n, true }
}

// WithPartitionLimit makes a process hold at most n of a consumer's
// partitions at a time (default: all it can claim), so that processes
// started one after another share the partitions rather than the first
// taking them all. To keep every partition handled while one process is
// down, give each of M processes a limit of at least partitions/(M-1),
// rounded up. Consume only.
func WithPartitionLimit(n int) FeedOption {
	return func(o *feedOptions) { o.limit, o.consumer = n, true }
}

// WithLeaseTTL sets how long a durable consumer's lease lasts without
// renewal (DefaultLeaseTTL): after a process dies, another takes its
// partitions over within about this long. A lease is renewed at least
// every third of it between events, so one handler call should take less
// than that. A process whose renewals fail (its backend unreachable)
// hands over no event once two thirds of a lease have passed since the
// last one, and takes the lease as lost after a whole one, so two
// processes never handle a partition's events at once. Consume only.
func WithLeaseTTL(d time.Duration) FeedOption {
	return func(o *feedOptions) { o.ttl, o.consumer = d, true }
}

// WithOwner names the process running a durable consumer, as listed by
// Store.Consumers (default: host name, process ID and a random suffix,
// unique per Consume call). Leases are held by owner, and a claim by the
// holder renews its lease, so every process running a consumer needs an
// owner of its own: two processes under one owner would both handle
// every event. A Store refuses to run a consumer twice under one owner
// at once (ErrInvalidConsumer). Consume only.
func WithOwner(owner string) FeedOption {
	return func(o *feedOptions) { o.owner, o.consumer = &owner, true }
}

// ReadAll returns up to limit of the store's events after position after,
// in Position order, each with its Position set. Start at the zero
// Position and pass the last event's Position to read on. The read is
// gap-safe: an event that becomes visible later always has a Position
// after every event returned before it, so a reader that follows
// positions never skips one. The feed keeps every event appended: TrimEvents
// and Archive do not remove events from it.
//
// Errors: ErrInvalidLimit, ErrClosed, ErrFeedNotSupported, ctx's error
// (a ctx already done reads nothing), or the backend's error.
func (s *Store) ReadAll(
	ctx context.Context, after Position, limit int,
) ([]*Event, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	if limit < 1 {
		return nil, fmt.Errorf("%w: %d", ErrInvalidLimit, limit)
	}
	f, ok := s.backend.(Feeder)
	if !ok {
		return nil, ErrFeedNotSupported
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var evs []*Event
	err := s.retry(ctx, false, func() (err error) {
		evs, err = f.ReadFeed(ctx, FeedRequest{After: after, Limit: limit})
		return err
	})
	return nonNil(evs), err
}

// Subscribe calls handler with every event of the store after position
// after (the zero Position for all of them) that the options select, in
// Position order, one at a time: first the history, then each new event
// shortly after it is committed. It returns when ctx ends (ctx's error),
// when the handler returns an error (that error) or panics (a *PanicError
// matching ErrHandlerPanicked), or on an error that retrying cannot cure
// (ErrClosed); it retries the backend's transient errors (ErrUnavailable)
// until ctx ends, logging them. Nothing is recorded: to resume after a
// restart, keep the last handled event's Position, or use Consume.
//
// Errors: ErrInvalidConsumer for a nil handler or a consumer option,
// ErrInvalidAggregateID for a prefix with an empty part,
// ErrFeedNotSupported, ErrClosed, ctx's error, ErrHandlerPanicked, or the
// handler's.
func (s *Store) Subscribe(
	ctx context.Context, after Position, handler FeedHandler,
	opts ...FeedOption,
) error {
	o, err := feedOpts(handler, opts)
	if err != nil {
		return err
	}
	if o.consumer {
		return fmt.Errorf("%w: partitions, lease and owner are Consume options",
			ErrInvalidConsumer)
	}
	f, err := s.feeder()
	if err != nil {
		return err
	}
	pos := after
	for {
		evs, err := s.readFeed(ctx, f, pos, o.batch, feedWait)
		if err != nil {
			return err
		}
		for _, ev := range evs {
			if err := ctx.Err(); err != nil {
				return err
			}
			if o.match(ev) {
				if err := s.handle(ctx, handler, ev); err != nil {
					return err
				}
			}
			pos = ev.Position
		}
	}
}

// handle calls handler with ev, returning a panic of the handler as a
// *PanicError of ErrHandlerPanicked, logged once with its stack.
func (s *Store) handle(ctx context.Context, handler FeedHandler, ev *Event) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = recovered(s.config.logger(), ErrHandlerPanicked, r, ev.AggregateID)
		}
	}()
	return handler(ctx, ev)
}

// readFeed reads the feed after pos, retrying transient errors until ctx
// ends.
func (s *Store) readFeed(
	ctx context.Context, f Feeder, pos Position, limit int, wait time.Duration,
) ([]*Event, error) {
	for attempt := 0; ; attempt++ {
		if err := s.checkOpen(); err != nil {
			return nil, err
		}
		evs, err := f.ReadFeed(ctx, FeedRequest{After: pos, Limit: limit, Wait: wait})
		if err == nil {
			return evs, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// A read is safe to send again, whatever became of the last one.
		if !transient(err, true) {
			return nil, err
		}
		s.config.logger().Warn("timebox: feed read failed, retrying",
			"after", pos.String(), "error", err)
		if err := s.sleep(ctx, backoff(attempt, 10*minBackoff, time.Second)); err != nil {
			return nil, err
		}
	}
}

func (s *Store) feeder() (Feeder, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	f, ok := s.backend.(Feeder)
	if !ok {
		return nil, ErrFeedNotSupported
	}
	return f, nil
}

func (s *Store) consumers() (ConsumerBackend, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	c, ok := s.backend.(ConsumerBackend)
	if !ok {
		return nil, ErrFeedNotSupported
	}
	return c, nil
}

// Consumers lists the store's durable consumers by name, each with its
// partitions' checkpoints and leases.
//
// Errors: ErrClosed, ErrFeedNotSupported, or the backend's error.
func (s *Store) Consumers(ctx context.Context) ([]ConsumerInfo, error) {
	c, err := s.consumers()
	if err != nil {
		return nil, err
	}
	var res []ConsumerInfo
	err = s.retry(ctx, false, func() (err error) {
		res, err = c.ListConsumers(ctx)
		return err
	})
	slices.SortFunc(res, func(a, b ConsumerInfo) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return nonNil(res), err
}

// ResetConsumer moves every partition of consumer name to pos (the zero
// Position to handle everything again) and ends its leases: running
// processes, in this Store or any other, lose their partitions and
// resume from pos once they claim them again, within about a lease, even
// when pos is the checkpoint they had committed last and they had
// handled events past it.
//
// Errors: ErrInvalidConsumer, ErrConsumerNotFound, ErrClosed,
// ErrFeedNotSupported, or the backend's error.
func (s *Store) ResetConsumer(ctx context.Context, name string, pos Position) error {
	if err := checkConsumerName("name", name); err != nil {
		return err
	}
	c, err := s.consumers()
	if err != nil {
		return err
	}
	return s.retry(ctx, false, func() error {
		return c.ResetConsumer(ctx, name, pos)
	})
}

// DeleteConsumer removes consumer name's checkpoints and leases. A process
// still running it loses its leases; if it goes on it starts the consumer
// again from the beginning, so stop it first.
//
// Errors: ErrInvalidConsumer, ErrConsumerNotFound, ErrClosed,
// ErrFeedNotSupported, or the backend's error.
func (s *Store) DeleteConsumer(ctx context.Context, name string) error {
	if err := checkConsumerName("name", name); err != nil {
		return err
	}
	c, err := s.consumers()
	if err != nil {
		return err
	}
	return s.retry(ctx, false, func() error {
		return c.DeleteConsumer(ctx, name)
	})
}

func feedOpts(handler FeedHandler, opts []FeedOption) (*feedOptions, error) {
	if handler == nil {
		return nil, fmt.Errorf("%w: nil handler", ErrInvalidConsumer)
	}
	o := &feedOptions{batch: DefaultFeedBatch, partitions: 1, ttl: DefaultLeaseTTL}
	for _, opt := range opts {
		opt(o)
	}
	switch {
	case o.batch < 1:
		return nil, fmt.Errorf("%w: batch size %d", ErrInvalidLimit, o.batch)
	case o.partitions < 1 || o.partitions > maxFeedPartitions:
		return nil, fmt.Errorf("%w: %d partitions", ErrInvalidConsumer, o.partitions)
	case o.limit < 0:
		return nil, fmt.Errorf("%w: partition limit %d", ErrInvalidConsumer, o.limit)
	case o.ttl < minLeaseTTL:
		return nil, fmt.Errorf("%w: lease %s", ErrInvalidConsumer, o.ttl)
	}
	if len(o.prefix) > 0 {
		if err := o.prefix.Validate(); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// match reports whether the options select ev.
func (o *feedOptions) match(ev *Event) bool {
	return (len(o.types) == 0 || slices.Contains(o.types, ev.Type)) &&
		ev.AggregateID.HasPrefix(o.prefix)
}

func checkConsumerName(what, name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty %s", ErrInvalidConsumer, what)
	case len(name) > maxConsumerName:
		return fmt.Errorf("%w: %s longer than %d bytes", ErrInvalidConsumer, what, maxConsumerName)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: %s is not UTF-8", ErrInvalidConsumer, what)
	case slices.Contains([]byte(name), 0):
		return fmt.Errorf("%w: %s holds a NUL byte", ErrInvalidConsumer, what)
	}
	return nil
}
