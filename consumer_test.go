package timebox_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/memory"
)

// unrenewable is a memory backend whose consumer claims and checkpoint
// commits (which renew a lease) fail as a cut connection would while
// failing is set, and whose commits are stored but answered as lost
// replies (ErrUnknownOutcome) while replyLost is set.
type unrenewable struct {
	*memory.Persistence
	failing   atomic.Bool
	replyLost atomic.Bool
	refused   atomic.Int32 // claims refused
}

func (u *unrenewable) ClaimPartition(
	ctx context.Context, l timebox.Lease,
) (timebox.Claim, error) {
	if u.failing.Load() {
		u.refused.Add(1)
		return timebox.Claim{}, fmt.Errorf("claim: %w", timebox.ErrUnavailable)
	}
	return u.Persistence.ClaimPartition(ctx, l)
}

func (u *unrenewable) CommitPartition(
	ctx context.Context, l timebox.Lease, pos timebox.Position,
) error {
	if u.failing.Load() {
		return fmt.Errorf("commit: %w", timebox.ErrUnavailable)
	}
	err := u.Persistence.CommitPartition(ctx, l, pos)
	if err == nil && u.replyLost.Load() {
		return fmt.Errorf("commit: reply lost: %w", timebox.ErrUnknownOutcome)
	}
	return err
}

// TestConsumeStopsOnUnrenewedLease runs a consumer whose lease renewals
// start failing while events keep coming, beside a second process
// waiting for the partition: the first must hand over no event once its
// lease may have run out, so the two never handle events at the same
// time, and once renewals work again nothing is lost.
func TestConsumeStopsOnUnrenewedLease(t *testing.T) {
	const ttl = 3 * time.Second // A stops a second before B may start
	mem := memory.NewPersistence()
	u := &unrenewable{Persistence: mem}
	stA, err := timebox.NewStore(u, timebox.Config{})
	require.NoError(t, err)
	stB, err := mem.NewStore(timebox.Config{})
	require.NoError(t, err)
	id := timebox.NewAggregateID("lease", "1")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var mu sync.Mutex
	var lastA, firstB time.Time
	handled := map[timebox.Position]int{}
	handler := func(isA bool) timebox.FeedHandler {
		return func(_ context.Context, ev *timebox.Event) error {
			mu.Lock()
			defer mu.Unlock()
			handled[ev.Position]++
			if now := time.Now(); isA {
				lastA = now
			} else if firstB.IsZero() {
				firstB = now
			}
			return nil
		}
	}
	handledBy := func() (time.Time, time.Time, int) {
		mu.Lock()
		defer mu.Unlock()
		return lastA, firstB, len(handled)
	}
	opts := []timebox.FeedOption{timebox.WithLeaseTTL(ttl), timebox.WithBatchSize(1)}
	doneA := make(chan error, 1)
	go func() { doneA <- stA.Consume(ctx, "c", handler(true), opts...) }()
	appended := 0
	appendOne := func() {
		ev := &timebox.Event{Type: "e", Data: []byte(`{}`), Timestamp: time.Now()}
		require.NoError(t, stA.AppendEvents(id, int64(appended), []*timebox.Event{ev}))
		appended++
	}
	appendOne()
	require.Eventually(t, func() bool {
		last, _, _ := handledBy()
		return !last.IsZero()
	}, 10*time.Second, 5*time.Millisecond)

	// B waits while A holds the lease; A's renewals now fail.
	doneB := make(chan error, 1)
	go func() { doneB <- stB.Consume(ctx, "c", handler(false), opts...) }()
	u.failing.Store(true)
	require.Eventually(t, func() bool {
		appendOne()
		_, first, _ := handledBy()
		return !first.IsZero()
	}, 20*time.Second, 20*time.Millisecond, "B never took the partition over")
	last, first, _ := handledBy()
	require.True(t, last.Before(first),
		"A handled an event at %v, after B began at %v", last, first)

	// The backend works again: B, holding the partition, handles what
	// follows, A waits, and every event is handled.
	u.failing.Store(false)
	for range 5 {
		appendOne()
	}
	require.Eventually(t, func() bool {
		_, _, n := handledBy()
		return n == appended
	}, 20*time.Second, 10*time.Millisecond)
	cancel()
	require.ErrorIs(t, <-doneA, context.Canceled)
	require.ErrorIs(t, <-doneB, context.Canceled)
	require.Len(t, handled, appended)
}

// TestConsumeResumesAfterUnrenewedLease cuts a lone consumer's claims and
// commits for longer than its lease: it stops, takes the lease as lost,
// claims it again once the backend works, and, finding its own
// checkpoint, goes on after what it handled rather than repeat it.
func TestConsumeResumesAfterUnrenewedLease(t *testing.T) {
	u := &unrenewable{Persistence: memory.NewPersistence()}
	c := startLoneConsumer(t, u, "2")
	c.appendSome(3)
	c.waitHandled(10 * time.Second)
	c.cutUntilLeaseLost(3)
	c.appendSome(3)
	c.waitHandled(20 * time.Second)
	handled := map[timebox.Position]int{}
	for _, pos := range c.stop() {
		handled[pos]++
	}
	for pos, n := range handled {
		require.Equal(t, 1, n, "event at %s handled %d times", pos, n)
	}
}

// TestConsumeResumesAfterLostCommitReplies stores a lone consumer's
// commits but loses their replies, then fails its commits and claims for
// longer than its lease: it takes the lease as lost and claims it again,
// finding a checkpoint it sent itself (not the last one it knew stored),
// and goes on after what it handled rather than handle any event again
// within the same Consume call.
func TestConsumeResumesAfterLostCommitReplies(t *testing.T) {
	u := &unrenewable{Persistence: memory.NewPersistence()}
	c := startLoneConsumer(t, u, "3")
	c.appendSome(3)
	c.waitHandled(10 * time.Second)
	// Checkpoints are stored but their replies lost, then the backend
	// fails outright, so the consumer's last stored checkpoint is one it
	// never learnt of, before the last event it handled.
	u.replyLost.Store(true)
	for range 3 {
		c.appendSome(1)
		c.waitHandled(10 * time.Second)
	}
	c.cutUntilLeaseLost(1)
	u.replyLost.Store(false)
	c.appendSome(3)
	c.waitHandled(20 * time.Second)
	order := c.stop()
	for i := 1; i < len(order); i++ {
		require.Equal(t, 1, order[i].Compare(order[i-1]),
			"event at %s handled after %s", order[i], order[i-1])
	}
}

// loneConsumer runs consumer "c", the only process running it, with a
// lease of 600ms and batches of one event, on aggregate ("lease", name)
// of a Store on u, and records the Positions it handles in order.
type loneConsumer struct {
	t        *testing.T
	u        *unrenewable
	st       *timebox.Store
	id       timebox.AggregateID
	appended int
	cancel   context.CancelFunc
	done     chan error

	mu    sync.Mutex
	order []timebox.Position
	seen  map[timebox.Position]bool
}

func startLoneConsumer(t *testing.T, u *unrenewable, name string) *loneConsumer {
	st, err := timebox.NewStore(u, timebox.Config{})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	c := &loneConsumer{
		t: t, u: u, st: st, id: timebox.NewAggregateID("lease", timebox.ID(name)),
		cancel: cancel, done: make(chan error, 1), seen: map[timebox.Position]bool{},
	}
	go func() {
		c.done <- st.Consume(ctx, "c", func(_ context.Context, ev *timebox.Event) error {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.order = append(c.order, ev.Position)
			c.seen[ev.Position] = true
			return nil
		}, timebox.WithLeaseTTL(600*time.Millisecond), timebox.WithBatchSize(1))
	}()
	return c
}

// appendSome appends n events to the consumer's aggregate.
func (c *loneConsumer) appendSome(n int) {
	for range n {
		ev := &timebox.Event{Type: "e", Data: []byte(`{}`), Timestamp: time.Now()}
		require.NoError(c.t, c.st.AppendEvents(c.id, int64(c.appended), []*timebox.Event{ev}))
		c.appended++
	}
}

// cutUntilLeaseLost fails the backend's claims and commits, appends n
// events, waits until the consumer has taken its lease as lost (a claim
// was refused), and heals the backend.
func (c *loneConsumer) cutUntilLeaseLost(n int) {
	c.u.failing.Store(true)
	c.appendSome(n)
	require.Eventually(c.t, func() bool { return c.u.refused.Load() > 0 },
		20*time.Second, 5*time.Millisecond)
	c.u.failing.Store(false)
}

// waitHandled waits, up to wait, until every event appended was handled
// at least once.
func (c *loneConsumer) waitHandled(wait time.Duration) {
	require.Eventually(c.t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.seen) == c.appended
	}, wait, time.Millisecond)
}

// stop ends the consumer and returns the Positions it handled, in order.
func (c *loneConsumer) stop() []timebox.Position {
	c.cancel()
	require.ErrorIs(c.t, <-c.done, context.Canceled)
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order
}
