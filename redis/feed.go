package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/codec"
)

// ReadFeed reads the store's feed stream, where append.lua adds each
// append's batch as one entry "0-<commit>" in the same script as the
// batch itself: the entry's events take Position{commit, 0}, {commit, 1},
// and so on. It reads with XRANGE from the entry of req.After on, so a
// read sees a prefix of the stream: Redis runs scripts one at a time, and a
// later script always gets a greater entry ID, so no event can appear
// before one already read (gap safety; see DESIGN.md, Feed). Trimming
// and archiving leave the stream alone.
//
// When there is nothing after req.After and req.Wait is positive, it
// waits with XREAD BLOCK on a connection pool of its own (so waiting
// readers never hold the connections appends use), in slices of at most
// 100 ms, so a cancelled ctx is noticed within that time (go-redis honours
// only deadlines). Errors: timebox.ErrClosed, ctx's error,
// timebox.ErrUnavailable (wrapped) for a connection that failed, an error
// matching codec.ErrMalformedEvent for an entry it cannot decode, or the
// server's reply.
func (p *Persistence) ReadFeed(
	ctx context.Context, req timebox.FeedRequest,
) ([]*timebox.Event, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	limit := max(req.Limit, 1)
	evs, err := p.readFeed(ctx, req.After, limit)
	if err != nil || len(evs) > 0 || req.Wait <= 0 {
		return evs, err
	}
	return p.waitFeed(ctx, req.After.Commit, limit, time.Now().Add(req.Wait))
}

// readFeed reads up to limit events after position after with XRANGE. It
// starts at after's entry (inclusive: the rest of its batch may follow
// after) unless the last read ended in that entry and after is its last
// event (p.lastEntry), and then just after it. An entry holds at least
// one event, but may hold many, so each XRANGE asks for as many entries
// as the page needs at the events per entry the last read saw
// (p.perEntry; the first read of p asks for probeEntries), and the next
// one, from just after the last entry read, for as many as the rest of
// the page then needs. The reads see prefixes of the stream, each longer
// than the one before, so their union is one.
// Each XRANGE reply is read into a reused buffer (xrange), released once
// its events are decoded; a full page sends the read of the next one
// ahead (readAhead).
func (p *Persistence) readFeed(
	ctx context.Context, after timebox.Position, limit int,
) ([]*timebox.Event, error) {
	res := make([]*timebox.Event, 0, min(limit, 1024))
	known := p.perEntry.Load()
	perEntry := max(int(known), 1)
	start, extra := feedID(after.Commit), 1
	if e := p.lastEntry.Load(); e != nil && e.commit == after.Commit && after.Offset >= e.events-1 {
		start, extra = "("+start, 0
	}
	count, entries := pageEntries(limit, perEntry)+extra, 0
	if known == 0 { // no read has seen an entry: ask for a few first
		count = min(count, probeEntries)
	}
	for {
		page, buf, err := p.page(ctx, start, count)
		if err != nil {
			return nil, p.feedError(ctx, err)
		}
		var used int
		var last entryEnd
		res, used, last, err = feedEvents(res, page, after, limit)
		p.release(buf)
		if err != nil {
			return nil, err
		}
		if entries += used; entries > 0 {
			perEntry = max(len(res)/entries, 1)
		}
		if len(res) >= limit || len(page) < count {
			if entries > 0 {
				p.perEntry.Store(int64(perEntry))
			}
			if used > 0 {
				p.lastEntry.Store(&last)
			}
			return res, nil
		}
		start, count = "("+page[len(page)-1].id, pageEntries(limit-len(res), perEntry)
	}
}

// maxPageEntries bounds the entries one XRANGE asks for, so that a limit
// near MaxInt reads page after page rather than overflowing a count.
const maxPageEntries = 1 << 16

// pageEntries returns how many entries hold n > 0 events at perEntry
// events an entry, rounded up, at most maxPageEntries.
func pageEntries(n, perEntry int) int {
	return min((n-1)/perEntry+1, maxPageEntries)
}

// probeEntries is what the first read of a Persistence asks for, before
// any read has seen how many events an entry holds: asking for limit+1
// entries of 100-event batches would read a hundred times the page.
const probeEntries = 16

// entryEnd is a feed entry's commit and how many events it holds.
type entryEnd struct {
	commit, events uint64
}

// waitFeed blocks until the feed has an entry after commit, end passes
// (nothing, nil error) or ctx ends (ctx's error), and returns the events
// of the entries that arrived.
func (p *Persistence) waitFeed(
	ctx context.Context, commit uint64, limit int, end time.Time,
) ([]*timebox.Event, error) {
	after := timebox.Position{Commit: commit, Offset: ^uint64(0)}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		block := min(time.Until(end), blockSlice)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < block {
			block = time.Until(dl)
			if block < time.Millisecond {
				<-ctx.Done()
				return nil, ctx.Err()
			}
		}
		if block < time.Millisecond { // BLOCK 0 would wait for ever
			return nil, nil
		}
		streams, err := p.blocker.XRead(ctx, &redis.XReadArgs{
			Streams: []string{p.keys.feed, feedID(commit)},
			Count:   int64(limit),
			Block:   block,
		}).Result()
		switch {
		case errors.Is(err, redis.Nil):
			continue
		case err != nil:
			return nil, p.feedError(ctx, err)
		}
		for _, s := range streams {
			if len(s.Messages) > 0 {
				evs, _, _, err := feedEvents(nil, msgEntries(s.Messages), after, limit)
				return evs, err
			}
		}
	}
}

// feedEvents appends to res the events of feed entries after position
// after, until res holds limit events, and returns how many entries it
// used and the last of them. The events keep nothing of the entries.
func feedEvents(
	res []*timebox.Event, entries []feedEntry, after timebox.Position, limit int,
) ([]*timebox.Event, int, entryEnd, error) {
	var last entryEnd
	for used, m := range entries {
		commit, err := parseFeedID(m.id)
		if err != nil {
			return nil, used, last, err
		}
		if commit < after.Commit {
			continue
		}
		id, err := codec.DecodeID(string(m.eid))
		if m.eid == nil || m.batch == nil || err != nil {
			return nil, used, last, fmt.Errorf("redis: feed entry %s: %w", m.id, codec.ErrMalformedEvent)
		}
		recs, err := unframe(m.batch)
		if err != nil {
			return nil, used, last, fmt.Errorf("redis: feed entry %s: %w: %w", m.id, codec.ErrMalformedEvent, err)
		}
		last = entryEnd{commit: commit, events: uint64(len(recs))}
		// Only the records after after and within limit are decoded.
		lo := uint64(0)
		if commit == after.Commit {
			lo = uint64(len(recs))
			if after.Offset < lo {
				lo = after.Offset + 1
			}
		}
		hi := min(uint64(len(recs)), lo+uint64(limit-len(res)))
		evs, err := codec.DecodeEvents(id, recs[lo:hi])
		if err != nil {
			return nil, used, last, fmt.Errorf("redis: feed entry %s: %w", m.id, err)
		}
		for i, ev := range evs {
			ev.Position = timebox.Position{Commit: commit, Offset: lo + uint64(i)}
		}
		res = append(res, evs...)
		if len(res) == limit {
			return res, used + 1, last, nil
		}
	}
	return res, len(entries), last, nil
}

// feedID is the stream ID of the feed entry of commit. The millisecond
// part is 0: it is kept for a store split over several slots, one feed
// each (see DESIGN.md, Feed).
func feedID(commit uint64) string {
	return "0-" + strconv.FormatUint(commit, 10)
}

func parseFeedID(s string) (uint64, error) {
	ms, seq, ok := strings.Cut(s, "-")
	commit, err := strconv.ParseUint(seq, 10, 64)
	if !ok || ms != "0" || err != nil {
		return 0, fmt.Errorf("redis: feed entry %s: %w", s, codec.ErrMalformedEvent)
	}
	return commit, nil
}

func (p *Persistence) feedError(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	return p.readError("read feed", err)
}
