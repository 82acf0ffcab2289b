package postgres

import (
	"cmp"
	"context"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/codec"
)

// feedChannel is the LISTEN/NOTIFY channel that wakes feed readers; the
// payload is the ns whose feed grew.
const feedChannel = "timebox_feed"

// Bounds of a waiting reader's backoff while committed events wait for an
// older transaction to end (see ReadFeed).
const (
	pendingMin = time.Millisecond
	pendingMax = 25 * time.Millisecond
)

var _ timebox.Feeder = (*Persistence)(nil)

// ReadFeed returns up to req.Limit events of the Prefix after req.After,
// in Position order: Commit is the writing transaction's ID
// (pg_current_xact_id()), Offset the event's index in its append. It
// reads only events of transactions below the snapshot's xmin
// (pg_snapshot_xmin(pg_current_snapshot())): every such transaction has
// ended, and any later one gets a greater ID, so no event can appear
// below what a read returned. A transaction left open anywhere in the
// cluster holds the feed back (lag, never a gap) until it ends; see
// DESIGN.md. Events trimmed or archived are still read (they move to
// timebox_feed_kept).
//
// A full page starts reading the pages after it (feedPrefetch: by
// statements of several pages, each page handed out as its rows arrive),
// so a reader catching up overlaps its work with the server's.
//
// An event is returned once every transaction older than its own has
// ended. So that a caller reads what it has just appended even while
// other appends are in flight, a read that finds nothing to return while
// committed events wait behind older open transactions looks again with
// a short backoff (1 to 25 ms), for up to req.Wait, or heldWait when
// req.Wait is zero; past that it returns nothing (a transaction left open
// holds the feed back for as long as it stays open). It never waits past
// a positive req.Wait: a follower reads again, and a durable consumer
// renews its lease in between. With req.Wait and nothing committed to return, it waits for a
// notification on channel timebox_feed (sent after appends, see
// feedNotifier) or an append of p's own, within req.Wait.
//
// It returns the driver's error wrapped as Persistence's other reads do,
// ctx's error when ctx ends, timebox.ErrClosed after Close.
func (p *Persistence) ReadFeed(
	ctx context.Context, req timebox.FeedRequest,
) ([]*timebox.Event, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	// read_feed.sql reads one append more than the limit; no read returns
	// anywhere near MaxInt32 events, so a larger limit reads as that.
	req.Limit = min(req.Limit, math.MaxInt32)
	// A page read ahead that failed or came back empty is read again.
	if evs, err, ok := p.takePrefetched(ctx, req.After, req.Limit); ok &&
		err == nil && len(evs) > 0 {
		p.readAhead(evs, req.Limit)
		return evs, nil
	}
	xid, off := feedArgs(req.After)
	start := time.Now()
	if req.Wait > 0 {
		p.startListener()
	}
	backoff := pendingMin
	for {
		wake := p.waiter(&p.listen.feed)
		evs, pending, err := p.readFeed(ctx, xid, off, req.Limit)
		if err != nil || len(evs) > 0 {
			p.readAhead(evs, req.Limit)
			return evs, err
		}
		wait := req.Wait - time.Since(start)
		if pending {
			if req.Wait == 0 {
				wait = heldWait - time.Since(start)
			}
			wait = min(wait, backoff)
			backoff = min(2*backoff, pendingMax)
		}
		if wait <= 0 {
			return evs, nil
		}
		if err := p.await(ctx, "read feed", wake, wait); err != nil {
			return nil, err
		}
	}
}

// heldWait is how long a ReadFeed with no Wait waits for committed events
// held back by older open transactions.
const heldWait = 2 * time.Second

// feedArgs returns pos as read_feed.sql compares it: no row has an xid
// above MaxInt64 or an off of MaxInt32 or more (an append that large
// cannot be sent), so larger values are clamped, the offset below
// MaxInt32 so that the read's offset + 1 stays an integer.
func feedArgs(pos timebox.Position) (int64, int32) {
	return int64(min(pos.Commit, math.MaxInt64)),
		int32(min(pos.Offset, math.MaxInt32-1))
}

// readFeed runs read_feed.sql: the events after (xid, off), up to limit,
// and whether committed events after Commit xid wait behind an older open
// transaction (pending; meaningful when no event came back).
func (p *Persistence) readFeed(
	ctx context.Context, xid int64, off int32, limit int,
) ([]*timebox.Event, bool, error) {
	rows, _ := p.pool.Query(ctx, readFeedSQL, p.ns, xid, off, limit, limit+1)
	evs, pending, err := scanFeed(rows)
	if err != nil {
		return nil, false, p.fail(ctx, "read feed", err)
	}
	return evs[:min(len(evs), limit)], pending, nil
}

// scanFeed reads the events of rows, and the pending flag of the row
// whose xid is -1 (see read_feed.sql).
func scanFeed(rows pgx.Rows) ([]*timebox.Event, bool, error) {
	evs := []*timebox.Event{}
	pending, err := scanFeedFunc(rows, func(ev *timebox.Event) bool {
		evs = append(evs, ev)
		return true
	})
	if err != nil {
		return nil, false, err
	}
	return evs, pending, nil
}

// scanFeedFunc passes the events of rows to yield in Position order (it
// orders the events of each Commit, which read_feed.sql does not), until
// yield returns false (the rest of rows is then discarded), and returns
// the pending flag of the row whose xid is -1 (see read_feed.sql). The
// columns are scanned as the driver's bytes (valid until the next row),
// which the EventAlloc and DecodeID copy, into variables of the call, not
// of each row (the scan's destinations escape).
func scanFeedFunc(
	rows pgx.Rows, yield func(*timebox.Event) bool,
) (bool, error) {
	defer rows.Close()
	pending := false
	var lastKey string
	var lastID timebox.AggregateID
	var xid int64
	var off int32
	var key, typ, data, eid, md pgtype.DriverBytes
	var f codec.EventFields
	var alloc codec.EventAlloc
	dst := []any{&xid, &off, &key, &f.Sequence, &f.Sec, &f.Nsec,
		&typ, &data, &eid, &md}
	// The events of the Commit being read, and whether they came in order.
	var group []*timebox.Event
	sorted := true
	flush := func() bool {
		if !sorted {
			slices.SortFunc(group, func(a, b *timebox.Event) int {
				return cmp.Compare(a.Position.Offset, b.Position.Offset)
			})
		}
		for _, ev := range group {
			if !yield(ev) {
				return false
			}
		}
		group, sorted = group[:0], true
		return true
	}
	for rows.Next() {
		if err := rows.Scan(dst...); err != nil {
			return false, err
		}
		if xid == -1 {
			pending = off != 0
			continue
		}
		if string(key) != lastKey || lastID == nil {
			var err error
			lastKey = string(key)
			if lastID, err = codec.DecodeID(lastKey); err != nil {
				return false, err
			}
		}
		f.Type, f.Data, f.ID, f.Metadata = typ, data, eid, md
		ev, err := alloc.Event(&f, lastID)
		if err != nil {
			return false, err
		}
		ev.Position = timebox.Position{Commit: uint64(xid), Offset: uint64(off)}
		if len(group) > 0 {
			last := group[len(group)-1].Position
			if last.Commit != ev.Position.Commit {
				if !flush() {
					return pending, nil
				}
			} else if last.Offset > ev.Position.Offset {
				sorted = false
			}
		}
		group = append(group, ev)
	}
	if err := rows.Err(); err != nil {
		return false, err
	}
	flush()
	return pending, nil
}

// await waits until wake is closed (a notification, an append by p, or
// the listener reconnected), d passes, ctx ends (an error of op matching
// ctx's) or p closes.
func (p *Persistence) await(
	ctx context.Context, op string, wake <-chan struct{}, d time.Duration,
) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-wake:
		return nil
	case <-t.C:
		return nil
	case <-ctx.Done():
		return p.fail(ctx, op, ctx.Err())
	case <-p.done:
		return p.checkOpen()
	}
}

// feedNotifier decides which statement announces p's appends on channel
// timebox_feed. NOTIFY takes a cluster-wide lock from its commit until
// the end of the transaction, so notifying transactions commit one at a
// time: were every append to notify, concurrent appends would lose group
// commit (exec-spread ran at a seventh of its rate). So at most one
// notifying append of p is in flight: an append that finds none carries
// the notification itself (the append statement calls pg_notify, which
// is delivered at its commit), the others do not. An append that
// committed unannounced (dirty) is covered by the next notifying append
// sent after it; only when p has no append left in flight does it send a
// notification of its own (feed_notify.sql, a transaction without a
// durable commit), so a steady load adds no statement, and sequential
// appends each notify in their own statement.
type feedNotifier struct {
	mu       sync.Mutex
	active   int  // appends in flight
	inflight bool // a notifying statement is in flight
	dirty    bool // an append committed after the last notifying statement was sent
	stopped  bool // by Close: no notification starts
	wg       sync.WaitGroup
}

// stop waits for the notification in flight, and keeps others from
// starting.
func (n *feedNotifier) stop() {
	n.mu.Lock()
	n.stopped = true
	n.mu.Unlock()
	n.wg.Wait()
}

// beginAppend is called before an append of events is sent, and reports
// whether it should notify: when no notifying statement is in flight. A
// notifying append covers every append done before it.
func (p *Persistence) beginAppend() bool {
	n := &p.notifier
	n.mu.Lock()
	defer n.mu.Unlock()
	n.active++
	if n.inflight {
		return false
	}
	n.inflight, n.dirty = true, false
	return true
}

// appended is called after every append begun by beginAppend, notifying
// or not (notified), that may have committed events (ok): it wakes p's
// own readers at once, and sends a notification when an append may have
// committed unannounced and no append is left in flight to carry it.
func (p *Persistence) appended(notified, ok bool) {
	if ok {
		p.wake(&p.listen.feed)
	}
	n := &p.notifier
	n.mu.Lock()
	defer n.mu.Unlock()
	n.active--
	if notified {
		n.inflight = false
	}
	if ok && !notified {
		n.dirty = true
	}
	if n.dirty && !n.inflight && n.active == 0 && !n.stopped {
		n.inflight, n.dirty = true, false
		n.wg.Go(p.runNotifier)
	}
}

// runNotifier sends notifications while p is idle and an append is left
// unannounced.
func (p *Persistence) runNotifier() {
	n := &p.notifier
	for {
		ctx, cancel := context.WithTimeout(context.Background(), notifyTimeout)
		if _, err := p.pool.Exec(ctx, feedNotifySQL, p.ns); err != nil &&
			!p.closed.Load() {
			p.log.Warn("feed notification failed; remote readers wake on "+
				"their next poll", "error", err)
		}
		cancel()
		n.mu.Lock()
		// With appends in flight, the next to begin, or the last to end,
		// announces the rest.
		if !n.dirty || n.stopped || n.active > 0 {
			n.inflight = false
			n.mu.Unlock()
			return
		}
		n.dirty = false
		n.mu.Unlock()
	}
}

// notifyTimeout bounds one feed notification.
const notifyTimeout = 5 * time.Second
