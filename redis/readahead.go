package redis

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"sync/atomic"
)

// readAhead holds the feed reads sent ahead of their readers. When a read
// returns a full page, a reader is catching up and will most likely ask
// for the page after it next, so that XRANGE is sent at once, in the
// background: the server's work on the next page and the reader's
// decoding of this one overlap (catch-up reads about 40% more events a
// second, see BENCHMARKS.md). A full page is final: feed entry IDs only
// grow, so the entries after an ID, up to the page's last, are the same
// whenever they are read; a page read ahead is what a read sent later
// would return (bar entries trimmed since, which it still holds). At most
// maxReadsAhead are kept, one per reader at a different position; the
// oldest goes when another comes.
type readAhead struct {
	ctx    context.Context // ends at close, and with it the reads
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	reads  []*aheadRead // oldest first
	hits   atomic.Int64 // reads sent ahead that a reader took
}

// aheadRead is one XRANGE sent ahead; its results are set before done is
// closed.
type aheadRead struct {
	start   string
	count   int
	done    chan struct{}
	entries []feedEntry
	buf     *bytes.Buffer
	err     error
}

const maxReadsAhead = 4

func newReadAhead() *readAhead {
	ctx, cancel := context.WithCancel(context.Background())
	return &readAhead{ctx: ctx, cancel: cancel}
}

// page reads up to count feed entries from start, as xrange does: it
// takes the read sent ahead for exactly that start and count if there is
// one (waiting for it to finish), and reads anew when there is none or it
// failed. When the page is full, it sends the read of the page after it,
// unless the page's reply was larger than the reply buffers kept for
// reuse (a page sized on a wrong guess of the events per entry).
func (p *Persistence) page(
	ctx context.Context, start string, count int,
) ([]feedEntry, *bytes.Buffer, error) {
	r := p.ahead.take(start, count)
	if r != nil {
		select {
		case <-r.done:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
	var entries []feedEntry
	var buf *bytes.Buffer
	var err error
	if r != nil && r.err == nil {
		entries, buf = r.entries, r.buf
		p.ahead.hits.Add(1)
	} else {
		entries, buf, err = p.xrange(ctx, start, count)
	}
	if err == nil && count > 0 && len(entries) == count &&
		buf != nil && buf.Len() <= keptReplySize {
		p.ahead.send(p, "("+entries[len(entries)-1].id, count)
	}
	return entries, buf, err
}

// take removes and returns the read sent ahead from start for count
// entries, or nil.
func (a *readAhead) take(start string, count int) *aheadRead {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, r := range a.reads {
		if r.start == start && r.count == count {
			a.reads = slices.Delete(a.reads, i, i+1)
			return r
		}
	}
	return nil
}

// send starts the read of count entries from start in the background,
// unless it is sent already or a is closed. A read that is dropped
// unused, evicted or still running at close, keeps its reply buffer
// (the garbage collector takes it) rather than returning it to the pool.
func (a *readAhead) send(p *Persistence, start string, count int) {
	r := &aheadRead{start: start, count: count, done: make(chan struct{})}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ctx.Err() != nil || slices.ContainsFunc(a.reads, func(o *aheadRead) bool {
		return o.start == start && o.count == count
	}) {
		return
	}
	if len(a.reads) == maxReadsAhead {
		a.reads = slices.Delete(a.reads, 0, 1)
	}
	a.reads = append(a.reads, r)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		r.entries, r.buf, r.err = p.xrange(a.ctx, r.start, r.count)
		close(r.done)
	}()
}

// close ends the reads in flight and waits for them; send starts none
// after it.
func (a *readAhead) close() {
	a.mu.Lock()
	a.cancel()
	a.reads = nil
	a.mu.Unlock()
	a.wg.Wait()
}
