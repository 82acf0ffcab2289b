package timebox

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

type (
	// Cursor marks where a paged list stopped: pass a page's Next to get
	// the page after it. The zero Cursor starts at the beginning. A Cursor
	// is opaque, valid for the same query on any Store of the same data,
	// and never expires: it names the last entry returned, not a position,
	// so a page after it is right however the list changed meanwhile.
	Cursor string

	// StatusPage is one page of ListAggregatesByStatusPage.
	StatusPage struct {
		Entries []StatusEntry
		// Next is the cursor of the following page; "" when this page is
		// the last.
		Next Cursor
	}

	// IDPage is one page of ListAggregatesByLabelPage or
	// ListAggregatesPage.
	IDPage struct {
		IDs []AggregateID
		// Next is the cursor of the following page; "" when this page is
		// the last.
		Next Cursor
	}

	// PagedQueries is implemented by backends that page their indexes, so
	// a page costs its own size rather than the whole list. A backend
	// without it is paged by the Store from the full list. Each method
	// returns, in page order (see AggregateID.CompareKey), at most limit
	// entries strictly after the given one (nil: from the first).
	PagedQueries interface {
		// ListAggregatesByStatusAfter pages status in order of entry time,
		// then of CompareKey.
		ListAggregatesByStatusAfter(
			ctx context.Context, status string, after *StatusEntry, limit int,
		) ([]StatusEntry, error)
		// ListAggregatesByLabelAfter pages the aggregates whose label has
		// value, in CompareKey order.
		ListAggregatesByLabelAfter(
			ctx context.Context, label, value string, after AggregateID, limit int,
		) ([]AggregateID, error)
		// ListAggregatesAfter pages the live aggregates that start with the
		// whole parts of prefix (nil: all), in CompareKey order.
		ListAggregatesAfter(
			ctx context.Context, prefix, after AggregateID, limit int,
		) ([]AggregateID, error)
	}

	// cursor is what a Cursor encodes: the query kind and the last entry.
	// The ID's parts are bytes (base64 in JSON), so any part survives.
	cursor struct {
		Kind string   `json:"k"`
		Sec  int64    `json:"s,omitempty"`
		Nsec int32    `json:"n,omitempty"`
		ID   [][]byte `json:"i"`
	}
)

var (
	// ErrInvalidCursor means a Cursor was not a Next of the same kind of
	// paged query; start again from the zero Cursor. It is not retryable.
	ErrInvalidCursor = errors.New("invalid page cursor")

	// ErrInvalidLimit means a page limit below 1.
	ErrInvalidLimit = errors.New("invalid page limit")
)

// Cursor kinds: a cursor of one kind of query is refused by another.
const (
	cursorStatus = "s"
	cursorLabel  = "l"
	cursorList   = "a"
)

// ListAggregatesByStatusPage returns up to limit aggregates in status
// after the cursor, ordered by the time each entered it and then by
// AggregateID.CompareKey, with the cursor of the next page. Pages are
// keyset-paged: an entry that stays in status is returned exactly once
// across the pages, whatever is appended between them; one that enters
// the status (or re-enters it, at a later time) after the cursor may show
// up in a later page, and one that leaves it is not returned after it
// left. A backend that implements PagedQueries reads one index range per
// page.
//
// Errors: ErrInvalidLimit, ErrInvalidCursor, ErrClosed, or the backend's
// error.
func (s *Store) ListAggregatesByStatusPage(
	ctx context.Context, status string, after Cursor, limit int,
) (StatusPage, error) {
	c, err := s.pageArgs(after, cursorStatus, limit)
	if err != nil {
		return StatusPage{}, err
	}
	var last *StatusEntry
	if c != nil {
		last = &StatusEntry{ID: c.id(), Timestamp: time.Unix(c.Sec, int64(c.Nsec)).UTC()}
	}
	var res []StatusEntry
	if pq, ok := s.backend.(PagedQueries); ok {
		res, err = pq.ListAggregatesByStatusAfter(ctx, status, last, fetch(limit))
	} else {
		res, err = s.backend.ListAggregatesByStatus(ctx, status)
		res = pageSlice(res, last, fetch(limit), compareStatus)
	}
	if err != nil {
		return StatusPage{}, err
	}
	page := StatusPage{Entries: nonNil(res)}
	if len(res) > limit {
		page.Entries = res[:limit]
		e := res[limit-1]
		page.Next = encodeCursor(cursor{
			Kind: cursorStatus, ID: idBytes(e.ID),
			Sec: e.Timestamp.Unix(), Nsec: int32(e.Timestamp.Nanosecond()),
		})
	}
	return page, nil
}

// ListAggregatesByLabelPage returns up to limit aggregates whose label
// has value, after the cursor, in AggregateID.CompareKey order, with the
// cursor of the next page. Paging is keyset paging as for
// ListAggregatesByStatusPage.
//
// Errors: ErrInvalidLimit, ErrInvalidCursor, ErrClosed, or the backend's
// error.
func (s *Store) ListAggregatesByLabelPage(
	ctx context.Context, label, value string, after Cursor, limit int,
) (IDPage, error) {
	c, err := s.pageArgs(after, cursorLabel, limit)
	if err != nil {
		return IDPage{}, err
	}
	last := c.id()
	var res []AggregateID
	if pq, ok := s.backend.(PagedQueries); ok {
		res, err = pq.ListAggregatesByLabelAfter(ctx, label, value, last, fetch(limit))
	} else {
		res, err = s.backend.ListAggregatesByLabel(ctx, label, value)
		res = pageSlice(res, idPtr(last), fetch(limit), AggregateID.CompareKey)
	}
	return idPage(res, err, limit, cursorLabel)
}

// ListAggregatesPage returns up to limit live aggregates whose ID starts
// with the whole parts of prefix (nil: all), after the cursor, in
// AggregateID.CompareKey order, with the cursor of the next page. Paging
// is keyset paging as for ListAggregatesByStatusPage.
//
// Errors: ErrInvalidLimit, ErrInvalidCursor, ErrInvalidAggregateID (an
// invalid non-empty prefix), ErrClosed, or the backend's error.
func (s *Store) ListAggregatesPage(
	ctx context.Context, prefix AggregateID, after Cursor, limit int,
) (IDPage, error) {
	c, err := s.pageArgs(after, cursorList, limit)
	if err != nil {
		return IDPage{}, err
	}
	if len(prefix) > 0 {
		if err := prefix.Validate(); err != nil {
			return IDPage{}, err
		}
	}
	last := c.id()
	var res []AggregateID
	if pq, ok := s.backend.(PagedQueries); ok {
		res, err = pq.ListAggregatesAfter(ctx, prefix.Clone(), last, fetch(limit))
	} else {
		res, err = s.backend.ListAggregates(ctx, prefix.Clone())
		res = pageSlice(res, idPtr(last), fetch(limit), AggregateID.CompareKey)
	}
	return idPage(res, err, limit, cursorList)
}

// CompareKey orders IDs as the backends' indexes and the paged lists do:
// by the bytes of their encoded keys, where each part's bytes outside
// [A-Za-z0-9-_.~/@] are written %XX (upper-case hex) and parts are joined
// by ':'. It is a total order, the same on every backend, but not the
// order of Compare (["a","b"] sorts after ["a-b"]).
func (id AggregateID) CompareKey(other AggregateID) int {
	i, j := keyReader{id: id}, keyReader{id: other}
	for {
		a, aok := i.next()
		b, bok := j.next()
		switch {
		case !aok || !bok:
			return cmp.Compare(boolInt(aok), boolInt(bok))
		case a != b:
			return cmp.Compare(a, b)
		}
	}
}

// keyReader yields the bytes of an ID's encoded key one at a time.
type keyReader struct {
	id      AggregateID
	part    int
	pos     int
	pending [2]byte
	npend   int
}

const hexUpper = "0123456789ABCDEF"

func (r *keyReader) next() (byte, bool) {
	if r.npend > 0 {
		b := r.pending[2-r.npend]
		r.npend--
		return b, true
	}
	for r.part < len(r.id) {
		p := r.id[r.part]
		if r.pos < len(p) {
			c := p[r.pos]
			r.pos++
			if plainKeyByte(c) {
				return c, true
			}
			r.pending = [2]byte{hexUpper[c>>4], hexUpper[c&15]}
			r.npend = 2
			return '%', true
		}
		r.part++
		r.pos = 0
		if r.part < len(r.id) {
			return ':', true
		}
	}
	return 0, false
}

func plainKeyByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '~' || c == '/' || c == '@'
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func compareStatus(a, b StatusEntry) int {
	if c := a.Timestamp.Compare(b.Timestamp); c != 0 {
		return c
	}
	return a.ID.CompareKey(b.ID)
}

// pageArgs checks the store, the limit and the cursor, which must be of
// kind; it returns nil for the zero Cursor.
func (s *Store) pageArgs(after Cursor, kind string, limit int) (*cursor, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	if limit < 1 {
		return nil, fmt.Errorf("%w: %d", ErrInvalidLimit, limit)
	}
	if after == "" {
		return nil, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(string(after))
	var c cursor
	if err == nil {
		err = json.Unmarshal(raw, &c)
	}
	if err == nil && (c.Kind != kind || c.id().Validate() != nil ||
		c.Nsec < 0 || c.Nsec >= 1e9) {
		err = errors.New("not a cursor of this query")
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCursor, err)
	}
	return &c, nil
}

func (c *cursor) id() AggregateID {
	if c == nil {
		return nil
	}
	id := make(AggregateID, len(c.ID))
	for i, p := range c.ID {
		id[i] = ID(p)
	}
	return id
}

func idBytes(id AggregateID) [][]byte {
	res := make([][]byte, len(id))
	for i, p := range id {
		res[i] = []byte(p)
	}
	return res
}

// fetch is how many entries a page of limit asks the backend for: one
// more, to learn whether a next page exists.
func fetch(limit int) int {
	if limit == math.MaxInt {
		return limit
	}
	return limit + 1
}

func idPtr(id AggregateID) *AggregateID {
	if id == nil {
		return nil
	}
	return &id
}

func encodeCursor(c cursor) Cursor {
	raw, _ := json.Marshal(c) // strings and integers: cannot fail
	return Cursor(base64.RawURLEncoding.EncodeToString(raw))
}

func idPage(res []AggregateID, err error, limit int, kind string) (IDPage, error) {
	if err != nil {
		return IDPage{}, err
	}
	page := IDPage{IDs: nonNil(res)}
	if len(res) > limit {
		page.IDs = res[:limit]
		page.Next = encodeCursor(cursor{Kind: kind, ID: idBytes(res[limit-1])})
	}
	return page, nil
}

// pageSlice sorts all by cmp and returns up to n entries after last (nil:
// from the first): the Store's paging of a backend without PagedQueries.
func pageSlice[T any](all []T, last *T, n int, cmp func(a, b T) int) []T {
	slices.SortFunc(all, cmp)
	if last != nil {
		i, found := slices.BinarySearchFunc(all, *last, cmp)
		if found {
			i++
		}
		all = all[i:]
	}
	return all[:min(n, len(all))]
}
