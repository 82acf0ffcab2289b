package timebox

import (
	"context"
	"math/rand/v2"
	"time"
)

// Conflict backoff bounds; see afterConflict.
const (
	conflictBackoffMin = 50 * time.Microsecond
	// The bound doubles up to 256 append round trips, or on to
	// conflictBackoffFloor for a fast backend, and at most to
	// conflictBackoffMax.
	conflictBackoffDoublings = 8
	conflictBackoffFloor     = 100 * time.Millisecond
	conflictBackoffMax       = time.Second
)

// afterConflict returns the state to retry from after the attempt-th
// conflict in a row, of an append that took rtt.
//
// After the first conflict the Executor retries at once: the conflict's
// events bring it to the head, and the writer that won is done. A second
// conflict in a row means writers in other processes keep colliding, so it
// waits a random time up to rtt<<(attempt-2), at most 256 round trips or
// 100 ms, whichever is longer, and never over a second ("full jitter": the
// colliding writers spread over a few of the backend's round trips, then
// more), and since others wrote meanwhile, reads the events
// appended after the conflict before retrying. The bound grows with the
// round trip rather than to a fixed time, because an aggregate takes about
// one append per round trip (a commit on PostgreSQL waits for its WAL
// flush): the slower the backend, the fewer writers a fixed wait spreads.
// The in-process queue never conflicts with itself, so it never waits. A
// ctx that ends while waiting fails the call with ctx's error; nothing was
// written.
func (e *Executor[T]) afterConflict(
	ctx context.Context, key string, id AggregateID, p *projection[T],
	vc *VersionConflictError, attempt int, rtt time.Duration,
) (*projection[T], error) {
	p, err := e.catchUp(ctx, key, id, p, vc)
	if err != nil || attempt < 2 {
		return p, err
	}
	base := min(max(rtt, conflictBackoffMin), conflictBackoffMax)
	d := base << min(attempt-2, 20)
	d = min(d, max(base<<conflictBackoffDoublings, conflictBackoffFloor), conflictBackoffMax)
	if !sleep(ctx, rand.N(d+1)) {
		return nil, ctx.Err()
	}
	evs, err := e.store.GetEventsContext(ctx, id, p.next)
	if err != nil {
		return nil, err
	}
	if len(evs) == 0 || evs[0].Sequence != p.next {
		return p, nil // trimmed or none: the append tells
	}
	value, err := e.apps.fold(p.value, evs)
	if err != nil {
		return nil, err
	}
	res := &projection[T]{
		value: value, next: evs[len(evs)-1].Sequence + 1,
		cmds: p.cmds.record(evs, e.store.config.commandLimit()),
	}
	e.remember(key, res)
	return res, nil
}
