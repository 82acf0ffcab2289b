package timebox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// SnapshotResult describes what GetSnapshot loaded.
type SnapshotResult struct {
	// AdditionalEvents are the stored events from NextSequence on.
	AdditionalEvents []*Event
	// NextSequence is the snapshot's sequence, 0 without a snapshot.
	NextSequence int64
	// SnapshotSize is the snapshot's length in bytes as marshalled.
	SnapshotSize int
	// EventsSize is the summed length of the AdditionalEvents' Data.
	EventsSize int
}

// GetSnapshot is GetSnapshotContext with context.Background().
func (s *Store) GetSnapshot(id AggregateID, target any) (*SnapshotResult, error) {
	return s.GetSnapshotContext(context.Background(), id, target)
}

// GetSnapshotContext decodes id's latest snapshot into target, leaving
// target untouched when there is none, and returns the events stored after
// it, all from one backend call. Applying AdditionalEvents to target gives
// the aggregate's state.
func (s *Store) GetSnapshotContext(
	ctx context.Context, id AggregateID, target any,
) (*SnapshotResult, error) {
	if err := s.check(id); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var rec *SnapshotRecord
	err := s.retry(ctx, false, func() (err error) {
		rec, err = s.backend.LoadSnapshot(ctx, id.Clone())
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(rec.Data) > 0 {
		if err := json.Unmarshal(rec.Data, target); err != nil {
			return nil, fmt.Errorf("decode snapshot of %s: %w", id, err)
		}
	}
	res := &SnapshotResult{
		AdditionalEvents: nonNil(rec.Events),
		NextSequence:     rec.Sequence,
		SnapshotSize:     len(rec.Data),
	}
	for _, ev := range rec.Events {
		res.EventsSize += len(ev.Data)
	}
	return res, nil
}

// PutSnapshot is PutSnapshotContext with context.Background().
func (s *Store) PutSnapshot(id AggregateID, value any, sequence int64) error {
	return s.PutSnapshotContext(context.Background(), id, value, sequence)
}

// PutSnapshotContext stores json.Marshal(value) as id's snapshot at
// sequence. A snapshot older than the stored one is ignored; an equal one
// replaces it. A snapshot beyond the head moves the head there, so the
// aggregate continues from it. With Config.TrimEvents, events below
// sequence leave live storage. It fails for a value that cannot be
// marshalled, a negative sequence, an invalid ID, a closed store or a ctx
// already done (nothing stored).
func (s *Store) PutSnapshotContext(
	ctx context.Context, id AggregateID, value any, sequence int64,
) error {
	if err := s.check(id); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err // nothing sent
	}
	_, err := s.putSnapshotObserved(ctx, id, value, sequence, false)
	return err
}

// putSnapshot stores value as id's snapshot at sequence; with ifHead only
// if id is live and its head is exactly sequence (see
// SnapshotRequest.IfHead). id has been checked.
// It returns the snapshot's size in bytes.
func (s *Store) putSnapshot(
	ctx context.Context, id AggregateID, value any, sequence int64, ifHead bool,
) (int, error) {
	if sequence < 0 {
		return 0, fmt.Errorf("%w: snapshot at %d", ErrInvalidSequence, sequence)
	}
	data, err := json.Marshal(value)
	if err != nil {
		return 0, fmt.Errorf("encode snapshot of %s: %w", id, err)
	}
	return len(data), s.backend.SaveSnapshot(ctx, SnapshotRequest{
		ID:       id.Clone(),
		Data:     data,
		Sequence: sequence,
		Trim:     s.config.TrimEvents,
		IfHead:   ifHead,
	})
}

// background runs fn in a goroutine that Close waits for, with a context
// that Close cancels. It reports false, running nothing, once the store is
// closed.
func (s *Store) background(fn func(context.Context)) bool {
	s.bgMu.Lock()
	defer s.bgMu.Unlock()
	if s.closed.Load() {
		return false
	}
	if s.bgCtx == nil {
		s.bgCtx, s.bgStop = context.WithCancel(context.Background())
	}
	ctx := s.bgCtx
	s.bg.Go(func() { fn(ctx) })
	return true
}

// stopBackground cancels the background work and waits for it to end;
// s.closed is set, so no more starts.
func (s *Store) stopBackground() {
	s.bgMu.Lock()
	if s.bgStop != nil {
		s.bgStop()
	}
	s.bgMu.Unlock()
	s.bg.Wait()
}

// snapStat is what an Executor knows of a cached aggregate's snapshot: its
// size, and the events (count and data size) this Executor committed after
// it. An Executor guards its snapStats with snapMu.
type snapStat struct {
	snapSize   int
	eventsSize int
	events     int
	saving     bool // a background snapshot is in flight
	// sending is set while a background snapshot is on its way to the
	// backend, and closed when the backend has answered.
	sending chan struct{}
}

// noteLoad records what a cold load of key found.
func (e *Executor[T]) noteLoad(key string, st *snapStat) {
	e.snapMu.Lock()
	defer e.snapMu.Unlock()
	e.snaps.Add(key, st)
}

// committed runs after evs were appended to id, leaving it at p. Once
// Config.SnapshotMinEvents events were committed since the aggregate's
// last snapshot and their data outweighs it (Config.SnapshotRatio), it
// saves a snapshot in the background, off the command's latency path: one
// at a time per aggregate, conditional on the head (IfHead), a failure
// logged, never returned. Close cancels and waits for it. While the
// snapshot is on its way to the backend, this Executor's next append to
// the aggregate waits for it (awaitSending), so that its own commits do
// not make IfHead skip it.
func (e *Executor[T]) committed(
	key string, id AggregateID, evs []*Event, p *projection[T],
) {
	if len(evs) == 0 {
		return
	}
	size := 0
	for _, ev := range evs {
		size += len(ev.Data)
	}
	e.snapMu.Lock()
	defer e.snapMu.Unlock()
	st, ok := e.snaps.Get(key)
	if !ok {
		return
	}
	st.eventsSize += size
	st.events += len(evs)
	if st.saving || !e.due(st) {
		return
	}
	st.saving = true
	st.hold()
	if !e.store.background(func(ctx context.Context) {
		e.saveBusy(ctx, key, id, st, p)
	}) {
		st.saving = false
		st.release()
	}
}

// due reports whether the events counted in st call for a background
// snapshot. snapMu is held.
func (e *Executor[T]) due(st *snapStat) bool {
	return st.events >= e.store.config.snapshotMinEvents() &&
		e.outweighs(st.snapSize, st.eventsSize)
}

// saveBusy saves the latest cached state of id (p or later) as a snapshot
// at its head, and goes on while that leaves a snapshot due. The counts
// of st go down only by what a stored snapshot covers. When IfHead skips
// the snapshot because a commit of this Executor moved the head, it tries
// again at once with the newer state; when the head moved otherwise
// (another process, an archive) it stops and keeps the counts, so the
// next commit tries again. Each try follows a commit, so tries never
// outnumber commits. A transient failure (ErrUnavailable, ErrUnknownOutcome)
// is retried as the Store retries appends, within Config.RetryTimeout and
// until Close; any other failure is logged, and the next commit tries
// again. So the last state of a burst of commits is snapshotted, unless
// fewer than SnapshotMinEvents events of the burst follow the last
// snapshot.
func (e *Executor[T]) saveBusy(
	ctx context.Context, key string, id AggregateID, st *snapStat, p *projection[T],
) {
	for {
		// Read the counts before the state: an event counted by now is
		// in the state, as commits are cached before they are counted.
		e.snapMu.Lock()
		st.hold()
		size, events, unknown := st.eventsSize, st.events, st.snapSize == 0
		e.snapMu.Unlock()
		if c, ok := e.cache.Peek(key); ok && c.next > p.next {
			p = c
		}

		data, err := e.marshalSnapshot(id, p)
		if err == nil && unknown && !e.outweighs(len(data), size) {
			// No snapshot to weigh the events against: weigh them against
			// the snapshot this state would make.
			e.snapMu.Lock()
			st.snapSize, st.saving = len(data), false
			st.release()
			e.snapMu.Unlock()
			return
		}
		if err == nil {
			err = e.store.retry(ctx, true, func() error {
				e.snapMu.Lock()
				st.hold()
				e.snapMu.Unlock()
				_, err := e.store.putSnapshotObserved(
					ctx, id, json.RawMessage(data), p.next, true,
				)
				e.snapMu.Lock()
				st.release() // not held through the backoff of a retry
				e.snapMu.Unlock()
				return err
			})
		}
		skipped := errors.Is(err, ErrSnapshotSkipped)

		e.snapMu.Lock()
		if err == nil {
			st.snapSize = len(data)
			st.eventsSize -= size
			st.events -= events
		}
		// The cache is read under snapMu: a commit cached after this read
		// is counted after the unlock, and starts a new save if due.
		c, ok := e.cache.Peek(key)
		newer := ok && c.next > p.next
		if (err == nil || skipped) && newer && e.due(st) {
			e.snapMu.Unlock()
			continue
		}
		st.saving = false
		st.release()
		e.snapMu.Unlock()
		if err != nil && !skipped && ctx.Err() == nil && !errors.Is(err, ErrClosed) {
			e.logger().Warn("timebox: background snapshot failed",
				"aggregate", id.String(), "sequence", p.next, "error", err)
		}
		return
	}
}

// marshalSnapshot encodes p's state for a background snapshot. A panic of
// the state's MarshalJSON comes back as a *PanicError, logged once with
// its stack: on a goroutine of the Store's it would end the process.
func (e *Executor[T]) marshalSnapshot(id AggregateID, p *projection[T]) (data []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = recovered(e.logger(), errPanicked, r, id)
		}
	}()
	return json.Marshal(snapshotValue(p))
}

// hold marks st's background snapshot as on its way to the backend,
// unless it is already; release marks it answered. snapMu is held.
func (st *snapStat) hold() {
	if st.sending == nil {
		st.sending = make(chan struct{})
	}
}

func (st *snapStat) release() {
	if st.sending != nil {
		close(st.sending)
		st.sending = nil
	}
}

// awaitSending waits, until ctx ends, while a background snapshot of key
// is on its way to the backend, so that this Executor's next append does
// not overtake it: an append landing first would move the head, and the
// snapshot would store nothing. It waits for one backend call at most
// (the snapshot's marshalling and one try, not its retries).
func (e *Executor[T]) awaitSending(ctx context.Context, key string) {
	e.snapMu.Lock()
	var ch chan struct{}
	if st, ok := e.snaps.Peek(key); ok {
		ch = st.sending
	}
	e.snapMu.Unlock()
	if ch == nil {
		return
	}
	select {
	case <-ch:
	case <-ctx.Done():
	}
}
