package postgres

import (
	"context"
	"sync"
	"time"

	"github.com/kode4food/timebox"
)

// Bounds of the feed's read-ahead: at most prefetchSlots pages are read
// ahead at once, and a page nobody took within prefetchTTL is dropped.
const (
	prefetchSlots = 16
	prefetchTTL   = 10 * time.Second
)

// feedPrefetch reads ahead for readers catching up: when a read returns a
// full page, the page after it is read at once, on a goroutine, so that
// the reader finds it read (or being read) when it asks for it, and the
// server reads one page while the reader handles the last. A page read
// ahead is as gap-safe as any read: it holds only events below the xmin
// of its own snapshot, taken after the page before it.
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

// readAhead starts reading the page after evs, a full page of limit
// events, unless too many pages are being read ahead.
func (p *Persistence) readAhead(evs []*timebox.Event, limit int) {
	if len(evs) == 0 || len(evs) < limit {
		return
	}
	f := &p.prefetch
	k := prefetchKey{evs[len(evs)-1].Position, limit}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return
	}
	now := time.Now()
	for key, pg := range f.pages {
		if now.Sub(pg.started) > prefetchTTL {
			delete(f.pages, key)
		}
	}
	if _, ok := f.pages[k]; ok || len(f.pages) >= prefetchSlots {
		return
	}
	if f.pages == nil {
		f.pages = map[prefetchKey]*prefetched{}
	}
	pg := &prefetched{started: now, done: make(chan struct{})}
	f.pages[k] = pg
	f.wg.Go(func() {
		defer close(pg.done)
		xid, off := feedArgs(k.after)
		pg.evs, pg.err = p.readFeed(p.bg, xid, off, limit)
	})
}
