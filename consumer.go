package timebox

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"time"
)

// Consume runs the durable consumer name: it calls handler with the
// store's events that the options select, in Position order, from the
// consumer's checkpoint on, first the history and then each new event
// shortly after it is committed. The checkpoint lives in the backend and
// advances after the handler has returned nil for the events before it
// (after each batch, WithBatchSize), so a restarted consumer resumes where
// it left off. Delivery is at least once: after a crash, up to one batch
// of events may be handled again, each with the same Position, by which a
// handler can deduplicate.
//
// A consumer is created, with its checkpoints at the zero Position, the
// first time it is run. Of the processes running the same consumer, one
// at a time holds each partition's lease (WithPartitions, WithLeaseTTL);
// the others wait, and one of them takes the partition over within about a
// lease after its holder stops or dies. A process handles its partitions
// concurrently, each partition's events one at a time in order.
//
// Consume returns when ctx ends (ctx's error), when the handler returns an
// error (that error, wrapped with the consumer's name and the event's
// Position; the checkpoint stays before that event) or panics (likewise, a
// *PanicError matching ErrHandlerPanicked), or on an error that retrying
// cannot cure. It commits what was handled and releases its leases before
// it returns. It retries transient backend errors (ErrUnavailable) until
// ctx ends.
//
// Errors: ErrInvalidConsumer, ErrInvalidLimit (batch size),
// ErrInvalidAggregateID (WithAggregatePrefix), ErrPartitionMismatch,
// ErrFeedNotSupported, ErrClosed, ctx's error, ErrHandlerPanicked, or the
// handler's.
func (s *Store) Consume(
	ctx context.Context, name string, handler FeedHandler, opts ...FeedOption,
) error {
	if err := checkConsumerName("name", name); err != nil {
		return err
	}
	o, err := feedOpts(handler, opts)
	if err != nil {
		return err
	}
	owner := defaultOwner()
	if o.owner != nil {
		owner = *o.owner
	}
	if err := checkConsumerName("owner", owner); err != nil {
		return err
	}
	// A claim by the lease's owner renews it, so two runs under one owner
	// would both hold every partition.
	if !s.startConsuming(name, owner) {
		return fmt.Errorf("%w: consumer %q already runs as owner %q in this store",
			ErrInvalidConsumer, name, owner)
	}
	defer s.stopConsuming(name, owner)
	f, err := s.feeder()
	if err != nil {
		return err
	}
	c, err := s.consumers()
	if err != nil {
		return err
	}
	limit := o.partitions
	if o.limit > 0 {
		limit = min(o.limit, o.partitions)
	}
	slots := make(chan struct{}, limit)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for p := range o.partitions {
		l := Lease{
			Consumer: name, Partition: p, Partitions: o.partitions,
			Owner: owner, TTL: o.ttl,
		}
		pc := &partitionConsumer{
			s: s, f: f, c: c, l: l, o: o, h: handler, slots: slots,
		}
		wg.Go(func() {
			// Stays set only if run never returns: a handler called
			// runtime.Goexit.
			err := errHandlerExited
			defer func() {
				if err != nil {
					cancel(err)
				}
			}()
			err = pc.run(ctx)
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}

// errHandlerExited is Consume's error when a handler called
// runtime.Goexit.
var errHandlerExited = fmt.Errorf("%w: it called runtime.Goexit", ErrHandlerPanicked)

// startConsuming records that consumer name runs as owner in s, and
// reports false, recording nothing, when it already does.
func (s *Store) startConsuming(name, owner string) bool {
	s.consumingMu.Lock()
	defer s.consumingMu.Unlock()
	k := [2]string{name, owner}
	if s.consuming[k] {
		return false
	}
	if s.consuming == nil {
		s.consuming = map[[2]string]bool{}
	}
	s.consuming[k] = true
	return true
}

func (s *Store) stopConsuming(name, owner string) {
	s.consumingMu.Lock()
	defer s.consumingMu.Unlock()
	delete(s.consuming, [2]string{name, owner})
}

func defaultOwner() string {
	host, _ := os.Hostname()
	if host == "" {
		host = "host"
	}
	if len(host) > 100 {
		host = host[:100]
	}
	return fmt.Sprintf("%s-%d-%08x", host, os.Getpid(), rand.Uint32())
}

// partitionConsumer runs one partition of a durable consumer.
type partitionConsumer struct {
	s *Store
	f Feeder
	c ConsumerBackend
	l Lease
	o *feedOptions
	h FeedHandler
	// slots holds a token for each partition this process holds or is
	// claiming (WithPartitionLimit).
	slots chan struct{}

	pos       Position // last event read and handled (or skipped)
	committed Position
	// unconfirmed holds the checkpoints sent since the last confirmed
	// commit that failed transiently: any of them may be stored (a lost
	// reply).
	unconfirmed []Position
	renewed     time.Time
}

// lostLease is what a partition consumer knew when it lost its lease,
// and the consumer's Epoch when it had claimed it.
type lostLease struct {
	committed, handled Position
	unconfirmed        []Position
	epoch              uint64
}

// ours reports whether c, found on claiming the partition again, is a
// checkpoint this consumer stored: its last confirmed one, or one whose
// reply was lost, with no reset or delete in between (which may have
// stored the very same position, but changes the Epoch).
func (l *lostLease) ours(c Claim) bool {
	return c.Epoch == l.epoch &&
		(c.Checkpoint == l.committed || slices.Contains(l.unconfirmed, c.Checkpoint))
}

// run claims the partition, waiting while another owner holds it, and
// consumes it until ctx ends or an error that is not a lost lease. After
// a lost lease it claims again; if the checkpoint it then finds is one it
// committed itself (the last confirmed, or one whose reply was lost), no
// other process moved it, and it goes on after the events it had handled
// since rather than handle them again.
func (pc *partitionConsumer) run(ctx context.Context) error {
	log := pc.s.config.logger()
	var lost *lostLease
	for attempt := 0; ; attempt++ {
		if err := pc.s.checkOpen(); err != nil {
			return err
		}
		select {
		case pc.slots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		if err := ctx.Err(); err != nil { // both were ready: claim nothing
			<-pc.slots
			return err
		}
		claimed := time.Now()
		c, err := pc.c.ClaimPartition(ctx, pc.l)
		if err == nil {
			from := c.Checkpoint
			if lost != nil && lost.ours(c) {
				from = lost.handled
			}
			err = pc.consume(ctx, from, c.Checkpoint, claimed)
			<-pc.slots
			var he *handlerError
			if errors.As(err, &he) {
				return he.err
			}
			if !errors.Is(err, ErrLeaseLost) {
				return err
			}
			attempt, lost = -1, &lostLease{
				committed: pc.committed, handled: pc.pos, unconfirmed: pc.unconfirmed,
				epoch: c.Epoch,
			}
			log.Info("timebox: consumer lost its lease",
				"consumer", pc.l.Consumer, "partition", pc.l.Partition)
			continue
		}
		<-pc.slots
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, ErrLeaseHeld):
			if err := pc.s.sleep(ctx, pc.l.TTL/3); err != nil {
				return err
			}
		case transient(err, true):
			// A claim sent again by the same owner renews its own lease,
			// so a lost reply is retried like a refused connection.
			log.Warn("timebox: consumer claim failed, retrying",
				"consumer", pc.l.Consumer, "partition", pc.l.Partition, "error", err)
			if err := pc.s.sleep(ctx, backoff(attempt, 10*minBackoff, time.Second)); err != nil {
				return err
			}
		default:
			return err
		}
	}
}

// consume handles the partition's events after pos, while it holds the
// lease claimed (at time claimed) with checkpoint committed. On the way
// out it commits what was handled and releases the lease, unless the
// lease was lost.
func (pc *partitionConsumer) consume(
	ctx context.Context, pos, committed Position, claimed time.Time,
) (err error) {
	pc.pos, pc.committed, pc.renewed = pos, committed, claimed
	pc.unconfirmed = nil
	defer func() {
		if errors.Is(err, ErrLeaseLost) {
			return
		}
		done, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
		defer cancel()
		if pc.pos != pc.committed {
			_ = pc.commit(done)
		}
		_ = pc.c.ReleasePartition(done, pc.l)
	}()
	renew := pc.l.TTL / 3
	for {
		evs, err := pc.s.readFeed(ctx, pc.f, pc.pos, pc.o.batch, min(feedWait, renew))
		if err != nil {
			return err
		}
		for _, ev := range evs {
			// Before each event: stop once ctx ends, and renew the lease
			// when it is due, so that a process whose handler stalled
			// past its lease learns it lost the partition before it
			// hands over another event.
			if err := ctx.Err(); err != nil {
				return err
			}
			if time.Since(pc.renewed) >= renew {
				if err := pc.commit(ctx); err != nil {
					return err
				}
			}
			if pc.mine(ev) {
				if err := pc.s.handle(ctx, pc.h, ev); err != nil {
					return &handlerError{fmt.Errorf("consumer %q at %s: %w",
						pc.l.Consumer, ev.Position, err)}
				}
			}
			pc.pos = ev.Position
		}
		if pc.pos != pc.committed || time.Since(pc.renewed) >= renew {
			if err := pc.commit(ctx); err != nil {
				return err
			}
		}
	}
}

func (pc *partitionConsumer) mine(ev *Event) bool {
	return pc.o.match(ev) &&
		PartitionOf(ev.AggregateID, pc.l.Partitions) == pc.l.Partition
}

// commit records pc.pos as the checkpoint and renews the lease. A
// transient failure is logged and left for the next commit to make good
// while the lease is surely still this process's (renewed less than two
// thirds of its TTL ago, counted from before the renewal was sent); past
// that the renewal is retried, and once the TTL has passed without one the
// lease is taken as lost (ErrLeaseLost), since another process may hold
// the partition by then: no event is handed over under a lease that may
// have run out. A lost lease, a closed store or ctx's end is returned.
func (pc *partitionConsumer) commit(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		sent := time.Now()
		err := pc.c.CommitPartition(ctx, pc.l, pc.pos)
		switch {
		case err == nil:
			pc.committed, pc.renewed, pc.unconfirmed = pc.pos, sent, nil
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case !transient(err, true):
			return err
		}
		// It may be stored all the same (a lost reply). Checkpoints only
		// grow within a lease, so the last one sent is the last noted.
		if n := len(pc.unconfirmed); n == 0 || pc.unconfirmed[n-1] != pc.pos {
			pc.unconfirmed = append(pc.unconfirmed, pc.pos)
		}
		since := time.Since(pc.renewed)
		switch {
		case since < pc.l.TTL*2/3:
			pc.s.config.logger().Warn("timebox: consumer commit failed, will retry",
				"consumer", pc.l.Consumer, "partition", pc.l.Partition, "error", err)
			return nil
		case since >= pc.l.TTL:
			return fmt.Errorf("%w: not renewed for %v: %w", ErrLeaseLost, since, err)
		}
		wait := min(backoff(attempt, 10*minBackoff, pc.l.TTL/10), pc.l.TTL-since)
		if err := pc.s.sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// handlerError carries a handler's error out of a partition, so that it
// is returned as it is even when it wraps a backend error.
type handlerError struct{ err error }

func (e *handlerError) Error() string { return e.err.Error() }

func (e *handlerError) Unwrap() error { return e.err }
