package history

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kode4food/timebox"
)

// Defaults for the zero fields of a FeedLoad.
const (
	DefaultFeedLease = time.Second
	DefaultFeedBatch = 64
	DefaultFeedDrain = 2 * time.Minute
)

const (
	// crashPause is how long a FeedRun waits before starting an
	// incarnation again after one crashed.
	crashPause = 100 * time.Millisecond
	// feedPage is the page size of the FeedRun's own feed reads.
	feedPage = 1000
	// pollEvery is how often a FeedRun checks the conditions it waits for.
	pollEvery = 5 * time.Millisecond
	// stallMarkers bounds the events an abandoned incarnation handles,
	// from when it is told to stall, before it stalls.
	stallMarkers = 8
)

// FeedLoad runs one durable consumer (a single partition, a name unique
// to the run) through a chaos run, as a series of incarnations (Consume
// calls) over the stores in turn, and records every event it handles.
type FeedLoad struct {
	// Stores are the stores incarnation i runs on: Stores[i%len(Stores)].
	// Required.
	Stores []*timebox.Store
	// Lease is the consumer's lease (timebox.WithLeaseTTL);
	// DefaultFeedLease if zero.
	Lease time.Duration
	// Batch is the consumer's batch size (timebox.WithBatchSize);
	// DefaultFeedBatch if zero.
	Batch int
	// FirstRestart is when the first incarnation is stopped and the
	// second started.
	FirstRestart time.Duration
	// Drain bounds the wait, once the workloads are over, for the consumer
	// to pass the feed's end; DefaultFeedDrain if zero.
	Drain time.Duration
}

// FeedRun is a FeedLoad running (StartFeed). Its schedule:
//
//  1. incarnation 0 starts at once;
//  2. at FirstRestart it is stopped (its context cancelled) and the next
//     one started;
//  3. when the fault starts, the running incarnation's handler is made to
//     stall at the 2nd to 8th event from then (as many marker events are
//     appended in one batch so there are enough), most likely in the
//     middle of a batch; once it stalls the next incarnation is started,
//     waits for the lease to run out and takes over, re-handling the
//     stalled one's uncommitted tail; only then is the stalled one
//     cancelled;
//  4. when the fault has ended, the running incarnation is stopped and the
//     next one started;
//  5. once the workloads are over (Finish), the consumer runs until it has
//     handled the feed's last position, read from every store, and no
//     store shows a later event; then it is stopped and the whole feed is
//     read for the check.
//
// An incarnation whose Consume returns an error of its own (a store cut
// off by the fault, a node killed) has Crashed and is followed, after a
// short pause, by one on the next store. Each step that waits for the
// fault goes on once the workloads are over, so the schedule always
// completes.
type FeedRun struct {
	l        FeedLoad
	ctx      context.Context
	name     string
	t0       time.Time
	nonce    string
	markers  atomic.Int64
	mark     sync.WaitGroup
	markCtx  context.Context
	markStop context.CancelFunc

	faultStart, faultEnd, done   chan struct{}
	startOnce, endOnce, doneOnce sync.Once
	result                       chan feedResult

	mu     sync.Mutex
	rec    FeedRecording
	top    timebox.Position
	maxInc int // highest incarnation that has handled an event; -1

	// owned by the run goroutine
	incs     []*incarnation
	live     *incarnation
	failedAt time.Time
}

type feedResult struct {
	rec  FeedRecording
	feed []*timebox.Event
	err  error
}

// incarnation is one Consume call.
type incarnation struct {
	id     int
	cancel context.CancelFunc
	done   chan struct{}
	err    error
	ended  bool
	// stallAfter, once set, counts down the events to handle before the
	// handler stalls; stalled is set when it does.
	stallAfter atomic.Int64
	stalled    atomic.Bool
}

// StartFeed starts running l; ctx bounds the whole run. Call Finish once
// the workloads are over.
func StartFeed(ctx context.Context, l FeedLoad) *FeedRun {
	if l.Lease <= 0 {
		l.Lease = DefaultFeedLease
	}
	if l.Batch <= 0 {
		l.Batch = DefaultFeedBatch
	}
	if l.Drain <= 0 {
		l.Drain = DefaultFeedDrain
	}
	nonce := NewRecorder().nonce
	f := &FeedRun{
		l: l, ctx: ctx, name: "chaos-" + nonce, nonce: nonce, t0: time.Now(),
		faultStart: make(chan struct{}), faultEnd: make(chan struct{}),
		done: make(chan struct{}), result: make(chan feedResult, 1),
		maxInc: -1,
	}
	f.rec.Consumer = f.name
	f.markCtx, f.markStop = context.WithCancel(ctx)
	go func() {
		rec, feed, err := f.run()
		f.result <- feedResult{rec: rec, feed: feed, err: err}
	}()
	return f
}

// Fault returns fault wrapped so that the run knows when it starts and
// ends.
func (f *FeedRun) Fault(fault func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) error {
		f.startOnce.Do(func() { close(f.faultStart) })
		defer f.endOnce.Do(func() { close(f.faultEnd) })
		return fault(ctx)
	}
}

// Finish tells the run the workloads are over, waits for it to drain and
// stop the consumer, and returns the recording and the final feed up to
// the recording's End. It returns an error when the stores have no feed,
// when the run's context ends, or when the consumer did not pass the
// feed's end within Drain; the recording so far is returned with it.
func (f *FeedRun) Finish() (FeedRecording, []*timebox.Event, error) {
	f.doneOnce.Do(func() { close(f.done) })
	r := <-f.result
	return r.rec, r.feed, r.err
}

func (f *FeedRun) run() (FeedRecording, []*timebox.Event, error) {
	defer f.mark.Wait()
	defer f.markStop()
	defer f.stopAll()
	if len(f.l.Stores) == 0 {
		return f.recording(), nil, ErrNoStores
	}
	f.startIncarnation()
	err := f.schedule()
	if err != nil {
		return f.recording(), nil, err
	}
	feed, err := f.drain()
	return f.recording(), feed, err
}

// schedule runs steps 1 to 4 of the run and waits for the workloads to be
// over.
func (f *FeedRun) schedule() error {
	err := f.waitFor("the first restart", func() bool {
		return time.Since(f.t0) >= f.l.FirstRestart || closed(f.done)
	})
	if err != nil {
		return err
	}
	f.restart()
	err = f.waitFor("the fault to start", func() bool {
		return closed(f.faultStart) || closed(f.done)
	})
	if err != nil {
		return err
	}
	if err := f.abandon(); err != nil {
		return err
	}
	err = f.waitFor("the fault to end", func() bool {
		return closed(f.faultEnd) || closed(f.done)
	})
	if err != nil {
		return err
	}
	f.restart()
	return f.waitFor("the workloads to end", func() bool { return closed(f.done) })
}

// abandon makes the live incarnation stall in its handler, starts the
// next one, and waits for it to take over.
func (f *FeedRun) abandon() error {
	for {
		old := f.live
		n := 2 + rand.IntN(stallMarkers-1)
		old.stallAfter.Store(int64(n))
		f.appendMarkers(n)
		err := f.waitFor("an incarnation to stall", func() bool {
			return old.stalled.Load() || f.live != old
		})
		if err != nil {
			return err
		}
		if !old.stalled.Load() {
			continue // it crashed first: stall its successor
		}
		f.startIncarnation()
		err = f.waitFor("a takeover from a stalled incarnation", func() bool {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.maxInc > old.id
		})
		if err != nil {
			return err
		}
		old.cancel()
		<-old.done
		f.end(old, Abandoned, nil)
		return nil
	}
}

// appendMarkers appends n events in one batch to an aggregate of its own
// through Stores[0], retrying until they are stored: a stalling
// incarnation needs n events to stall at.
func (f *FeedRun) appendMarkers(n int) {
	id := timebox.NewAggregateID("feedload", timebox.ID(f.nonce),
		timebox.ID(fmt.Sprint(f.markers.Add(1))))
	st := f.l.Stores[0]
	f.mark.Go(func() {
		for f.markCtx.Err() == nil {
			evs := make([]*timebox.Event, n)
			for i := range evs {
				evs[i] = &timebox.Event{
					Timestamp: time.Now(), Type: "marker", Data: []byte(`{}`),
				}
			}
			err := st.AppendEventsContext(f.markCtx, id, 0, evs)
			if err == nil || errors.Is(err, timebox.ErrVersionConflict) {
				return // stored, now or by an earlier attempt
			}
			_ = Sleep(f.markCtx, 50*time.Millisecond)
		}
	})
}

// restart stops the live incarnation and starts the next.
func (f *FeedRun) restart() {
	f.stop(f.live)
	f.startIncarnation()
}

// drain runs the consumer until it has handled the feed's last position
// and no store shows a later event, stops it, and reads the final feed.
func (f *FeedRun) drain() ([]*timebox.Event, error) {
	ctx, cancel := context.WithTimeout(f.ctx, f.l.Drain)
	defer cancel()
	f.ctx = ctx // waitFor and the reads below are bounded by the drain
	var end timebox.Position
	var src int
	for {
		e, s, err := f.feedEnd(ctx, f.handledTop())
		if err != nil {
			return nil, fmt.Errorf("read the feed's end: %w", err)
		}
		if e.Compare(end) <= 0 && f.handledTop().Compare(end) >= 0 {
			break
		}
		end, src = e, s
		err = f.waitFor(fmt.Sprintf("the consumer to pass the feed's end %s", end),
			func() bool { return f.handledTop().Compare(end) >= 0 })
		if err != nil {
			return nil, err
		}
	}
	f.stop(f.live)
	f.mu.Lock()
	f.rec.End = end
	f.mu.Unlock()
	feed, err := readFeedTo(ctx, f.l.Stores[src], end)
	if err != nil {
		return nil, fmt.Errorf("read the final feed from store %d: %w", src, err)
	}
	return feed, nil
}

// feedEnd returns the latest position any store's feed holds after from
// (from itself if none), and the index of a store holding it. A closed
// store (ErrClosed: a node still down) is passed over, unless all are.
func (f *FeedRun) feedEnd(ctx context.Context, from timebox.Position) (timebox.Position, int, error) {
	end, src, open := from, 0, 0
stores:
	for i, st := range f.l.Stores {
		pos := from
		for {
			evs, err := readAllRetry(ctx, st, pos, feedPage)
			if errors.Is(err, timebox.ErrClosed) {
				continue stores
			}
			if err != nil {
				return end, src, fmt.Errorf("store %d: %w", i, err)
			}
			if len(evs) == 0 {
				break
			}
			pos = evs[len(evs)-1].Position
		}
		if open++; open == 1 || pos.Compare(end) > 0 {
			end, src = pos, i
		}
	}
	if open == 0 {
		return end, src, timebox.ErrClosed
	}
	return end, src, nil
}

// readFeedTo reads st's feed from the start up to and including end,
// waiting for a store that lags (a restarted node catching up) to hold
// it all.
func readFeedTo(ctx context.Context, st *timebox.Store, end timebox.Position) ([]*timebox.Event, error) {
	var res []*timebox.Event
	var pos timebox.Position
	for pos.Compare(end) < 0 {
		evs, err := readAllRetry(ctx, st, pos, feedPage)
		if err != nil {
			return res, err
		}
		if len(evs) == 0 {
			if err := Sleep(ctx, 50*time.Millisecond); err != nil {
				return res, fmt.Errorf("%w: feed ends at %s, before %s", err, pos, end)
			}
			continue
		}
		for _, ev := range evs {
			if ev.Position.Compare(end) <= 0 {
				res = append(res, ev)
			}
		}
		pos = evs[len(evs)-1].Position
	}
	return res, nil
}

// readAllRetry calls ReadAll until it succeeds or ctx ends.
func readAllRetry(
	ctx context.Context, st *timebox.Store, after timebox.Position, limit int,
) ([]*timebox.Event, error) {
	for {
		evs, err := st.ReadAll(ctx, after, limit)
		if err == nil || errors.Is(err, timebox.ErrFeedNotSupported) ||
			errors.Is(err, timebox.ErrClosed) {
			return evs, err
		}
		if serr := Sleep(ctx, 50*time.Millisecond); serr != nil {
			return nil, fmt.Errorf("%w (last error: %w)", serr, err)
		}
	}
}

// waitFor waits until cond holds, keeping an incarnation running (see
// supervise). It fails when the run's context ends, naming what it
// waited for, or when the stores have no feed.
func (f *FeedRun) waitFor(what string, cond func() bool) error {
	for {
		if err := f.supervise(); err != nil {
			return err
		}
		if cond() {
			return nil
		}
		if err := Sleep(f.ctx, pollEvery); err != nil {
			return fmt.Errorf("waiting for %s (handled up to %s): %w; "+
				"incarnations:%s", what, f.handledTop(), err,
				describeIncarnations(f.recording().Incarnations))
		}
	}
}

// supervise replaces the live incarnation, a short while after it
// crashed, by one on the next store.
func (f *FeedRun) supervise() error {
	l := f.live
	if !closed(l.done) {
		return nil
	}
	if errors.Is(l.err, timebox.ErrFeedNotSupported) {
		return fmt.Errorf("store %d cannot run a consumer: %w",
			l.id%len(f.l.Stores), l.err)
	}
	if f.failedAt.IsZero() {
		f.failedAt = time.Now()
		f.end(l, Crashed, l.err)
	}
	if time.Since(f.failedAt) >= crashPause {
		f.startIncarnation()
	}
	return nil
}

// startIncarnation starts the next incarnation and makes it the live one.
func (f *FeedRun) startIncarnation() {
	f.mu.Lock()
	id := len(f.rec.Incarnations)
	s := id % len(f.l.Stores)
	owner := fmt.Sprintf("%s-%d", f.name, id)
	f.rec.Incarnations = append(f.rec.Incarnations, Incarnation{Store: s, Owner: owner})
	f.mu.Unlock()
	ctx, cancel := context.WithCancel(f.ctx)
	inc := &incarnation{id: id, cancel: cancel, done: make(chan struct{})}
	st := f.l.Stores[s]
	go func() {
		defer close(inc.done)
		inc.err = st.Consume(ctx, f.name, f.handler(inc),
			timebox.WithLeaseTTL(f.l.Lease), timebox.WithBatchSize(f.l.Batch),
			timebox.WithOwner(owner))
	}()
	f.incs = append(f.incs, inc)
	f.live, f.failedAt = inc, time.Time{}
}

// handler records each event inc handles, or stalls once inc is told to.
func (f *FeedRun) handler(inc *incarnation) timebox.FeedHandler {
	return func(ctx context.Context, ev *timebox.Event) error {
		if inc.stallAfter.Load() > 0 && inc.stallAfter.Add(-1) == 0 {
			inc.stalled.Store(true)
			<-ctx.Done()
			return ctx.Err()
		}
		h := Handling{
			Incarnation: inc.id, Position: ev.Position,
			Aggregate: ev.AggregateID.String(), Sequence: ev.Sequence,
			EventID: ev.ID, Lag: time.Since(ev.Timestamp),
		}
		if p, ok := decode(ev); ok {
			h.Key = p.key()
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.rec.Handlings = append(f.rec.Handlings, h)
		f.maxInc = max(f.maxInc, inc.id)
		if ev.Position.Compare(f.top) > 0 {
			f.top = ev.Position
		}
		return nil
	}
}

// stop cancels inc and waits for it to return: Stopped, or Crashed if
// Consume failed of its own.
func (f *FeedRun) stop(inc *incarnation) {
	inc.cancel()
	<-inc.done
	if errors.Is(inc.err, context.Canceled) || inc.err == nil {
		f.end(inc, Stopped, nil)
		return
	}
	f.end(inc, Crashed, inc.err)
}

// stopAll stops every incarnation still running.
func (f *FeedRun) stopAll() {
	for _, inc := range f.incs {
		f.stop(inc)
	}
}

// end records how inc ended, the first time it is called for inc.
func (f *FeedRun) end(inc *incarnation, how IncarnationEnd, err error) {
	if inc.ended {
		return
	}
	inc.ended = true
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rec.Incarnations[inc.id].End = how
	if err != nil {
		f.rec.Incarnations[inc.id].Err = err.Error()
	}
}

func (f *FeedRun) handledTop() timebox.Position {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.top
}

// recording returns a copy of the recording so far.
func (f *FeedRun) recording() FeedRecording {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.rec
	r.Incarnations = append([]Incarnation(nil), r.Incarnations...)
	r.Handlings = append([]Handling(nil), r.Handlings...)
	return r
}

func closed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
