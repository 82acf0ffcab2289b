package postgres

import (
	"context"
	"sync"
	"time"

	"github.com/kode4food/timebox"
)

// Bounds of the feed's read-ahead: at most prefetchSlots pages are read
// ahead or being read at once, a page nobody took within prefetchTTL is
// dropped, and the first statement of a read-ahead reads about
// aheadEvents events (whole pages; at least one), each next one twice as
// many as the one before, up to maxAheadEvents: a reader that keeps up
// gets few, large statements (a statement's own cost is spread over more
// events: catch-up 0.43 -> 0.55 of a raw scan, BENCHMARKS.md), while one
// that falls behind stops the read-ahead after a small one, so the rows
// of a statement cut short (read, then dropped) stay few.
const (
	prefetchSlots  = 16
	prefetchTTL    = 10 * time.Second
	aheadEvents    = 8192
	maxAheadEvents = 65536
)

// feedPrefetch reads ahead for readers catching up: when a read returns a
// full page, the pages after it are read at once, on a goroutine, by
// statements of several pages each whose rows are handed out page by page
// as they arrive, so that the reader finds its next page read (or being
// read) when it asks for it, the server reads while the reader handles
// the last page, and each statement's cost is spread over many pages. A
// page read ahead is as gap-safe as any read: it holds only events below
// the xmin of its statement's snapshot, and it starts where the page
// before it ended.
type feedPrefetch struct {
	mu      sync.Mutex
	pages   map[prefetchKey]*prefetched
	stopped bool // by Close: no read-ahead starts
	wg      sync.WaitGroup
}

// stop waits for the reads ahead in flight (Close has ended their
// context), and keeps others from starting.
func (f *feedPrefetch) stop() {
	f.mu.Lock()
	f.stopped = true
	f.mu.Unlock()
	f.wg.Wait()
}

type prefetchKey struct {
	after timebox.Position
	limit int
}

// prefetched is a page read ahead: done is closed once evs (at most
// limit events; fewer only where the readable feed ended) or err is set.
type prefetched struct {
	started time.Time
	done    chan struct{}
	evs     []*timebox.Event
	err     error
}

// takePrefetched returns the page read ahead for (after, limit), waiting
// for its read to end, and whether there was one.
func (p *Persistence) takePrefetched(
	ctx context.Context, after timebox.Position, limit int,
) ([]*timebox.Event, error, bool) {
	f := &p.prefetch
	k := prefetchKey{after, limit}
	f.mu.Lock()
	pg, ok := f.pages[k]
	delete(f.pages, k)
	f.mu.Unlock()
	if !ok {
		return nil, nil, false
	}
	select {
	case <-pg.done:
		return pg.evs, pg.err, true
	case <-ctx.Done():
		return nil, ctx.Err(), true
	}
}

// readAhead starts reading the pages after evs, a full page of limit
// events, unless they are read ahead already or too many pages are.
func (p *Persistence) readAhead(evs []*timebox.Event, limit int) {
	if len(evs) == 0 || len(evs) < limit {
		return
	}
	k := prefetchKey{evs[len(evs)-1].Position, limit}
	pg := p.reserve(k)
	if pg == nil {
		return
	}
	perAppend := eventsPerAppend(evs)
	p.prefetch.wg.Go(func() { p.runAhead(k, pg, perAppend) })
}

// reserve registers an empty page for k, unless one is there, too many
// are, or p is closing, and returns it (nil when not registered).
func (p *Persistence) reserve(k prefetchKey) *prefetched {
	f := &p.prefetch
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return nil
	}
	now := time.Now()
	for key, pg := range f.pages {
		if now.Sub(pg.started) > prefetchTTL {
			delete(f.pages, key)
		}
	}
	if _, ok := f.pages[k]; ok || len(f.pages) >= prefetchSlots {
		return nil
	}
	if f.pages == nil {
		f.pages = map[prefetchKey]*prefetched{}
	}
	pg := &prefetched{started: now, done: make(chan struct{})}
	f.pages[k] = pg
	return pg
}

// runAhead fills pg, the page after k.after, and the pages after it, by
// statements of about aheadEvents events, then twice as many each time up
// to maxAheadEvents (read_feed.sql with as many appends as that needs at
// perAppend events each), handing out each page as soon as its last row
// arrives. It stops where the readable feed ends
// (the page in progress is handed out as it is, perhaps empty, and read
// again by its taker), or when no further page may be registered.
func (p *Persistence) runAhead(
	k prefetchKey, pg *prefetched, perAppend int,
) {
	limit := k.limit
	pages := max(1, aheadEvents/limit)
	var cur []*timebox.Event
	after := k.after
	for pg != nil {
		appends := min(pages*limit/max(perAppend, 1)+2, pages*limit+1)
		xid, off := feedArgs(after)
		rows, _ := p.pool.Query(p.bg, readFeedSQL, p.ns, xid, off,
			pages*limit, appends)
		got, xids := 0, 0
		var lastXid uint64
		_, err := scanFeedFunc(rows, func(ev *timebox.Event) bool {
			got++
			if ev.Position.Commit != lastXid {
				xids, lastXid = xids+1, ev.Position.Commit
			}
			after = ev.Position
			if cur = append(cur, ev); len(cur) < limit {
				return true
			}
			next := p.reserve(prefetchKey{after, limit})
			pg.evs, cur = cur, nil
			close(pg.done)
			pg = next
			return pg != nil
		})
		if err != nil {
			err = p.fail(p.bg, "read feed", err)
		}
		// The statement stopped at its appends, not at the end of the
		// readable feed, when it returned all it was asked for or (the
		// first append may have been read whole already) all its appends
		// but one.
		more := got >= pages*limit || xids >= appends-1
		if pg != nil && (err != nil || !more) {
			pg.evs, pg.err = cur, err
			close(pg.done)
			return
		}
		if xids > 0 {
			perAppend = max(1, got/xids)
		}
		pages = max(pages, min(2*pages, maxAheadEvents/limit))
	}
}

// eventsPerAppend estimates the events per append in evs, in Position
// order, by the Commits it spans.
func eventsPerAppend(evs []*timebox.Event) int {
	n := 0
	var last uint64
	for _, ev := range evs {
		if ev.Position.Commit != last {
			n, last = n+1, ev.Position.Commit
		}
	}
	return max(1, len(evs)/max(n, 1))
}
