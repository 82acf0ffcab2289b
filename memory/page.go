package memory

import (
	"context"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/kode4food/timebox"
)

var _ timebox.PagedQueries = (*Persistence)(nil)

// The memory backend's indexes are hash maps keyed by encoded ID (whose
// byte order is AggregateID.CompareKey), so a page is selected from the
// status's or label value's members (not the whole store; ListAggregates
// from every aggregate): one pass keeping the first limit after the cursor
// (see firstN), O(members × log limit), with no sort of the whole set.

// ListAggregatesByStatusAfter pages status by entry time, then key.
func (p *Persistence) ListAggregatesByStatusAfter(
	_ context.Context, status string, after *timebox.StatusEntry, limit int,
) ([]timebox.StatusEntry, error) {
	type entry struct {
		k  string
		at time.Time
	}
	var afterKey string
	if after != nil {
		afterKey = key(after.ID)
	}
	cmp := func(a, b entry) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return strings.Compare(a.k, b.k)
	}
	var res []timebox.StatusEntry
	err := p.read(func() error {
		top := firstN[entry]{n: limit, cmp: cmp}
		for k, at := range p.status[status] {
			e := entry{k, at}
			if after == nil || cmp(e, entry{afterKey, after.Timestamp}) > 0 {
				top.add(e)
			}
		}
		for _, e := range top.result() {
			res = append(res, timebox.StatusEntry{ID: p.aggs[e.k].id.Clone(), Timestamp: e.at})
		}
		return nil
	})
	return res, err
}

// ListAggregatesByLabelAfter pages the aggregates whose label has value,
// by key.
func (p *Persistence) ListAggregatesByLabelAfter(
	_ context.Context, label, value string, after timebox.AggregateID, limit int,
) ([]timebox.AggregateID, error) {
	var res []timebox.AggregateID
	err := p.read(func() error {
		var keys []string
		for k := range p.labels[label][value] {
			keys = append(keys, k)
		}
		res = p.idsAfter(keys, after, limit)
		return nil
	})
	return res, err
}

// ListAggregatesAfter pages the live aggregates under prefix, by key.
func (p *Persistence) ListAggregatesAfter(
	_ context.Context, prefix, after timebox.AggregateID, limit int,
) ([]timebox.AggregateID, error) {
	var res []timebox.AggregateID
	err := p.read(func() error {
		var keys []string
		for k, a := range p.aggs {
			if a.id.HasPrefix(prefix) {
				keys = append(keys, k)
			}
		}
		res = p.idsAfter(keys, after, limit)
		return nil
	})
	return res, err
}

// idsAfter returns the IDs of the first limit of keys after after's key,
// in key order. p.mu is held.
func (p *Persistence) idsAfter(
	keys []string, after timebox.AggregateID, limit int,
) []timebox.AggregateID {
	top := firstN[string]{n: limit, cmp: strings.Compare}
	ak := ""
	if after != nil {
		ak = key(after)
	}
	for _, k := range keys {
		if after == nil || k > ak {
			top.add(k)
		}
	}
	keys = top.result()
	res := make([]timebox.AggregateID, 0, len(keys))
	for _, k := range keys {
		res = append(res, p.aggs[k].id.Clone())
	}
	return res
}

// firstN keeps the n least items added: it buffers up to 2n, then sorts
// and drops all but the n least, so m items cost O(m log n).
type firstN[T any] struct {
	n     int
	cmp   func(a, b T) int
	items []T
	// full is set once n items are known: bound is the greatest of them,
	// and an item not below it can never be among the n least.
	full  bool
	bound T
}

func (f *firstN[T]) add(v T) {
	if f.full && f.cmp(v, f.bound) >= 0 {
		return
	}
	f.items = append(f.items, v)
	if f.n <= math.MaxInt/2 && len(f.items) >= 2*f.n {
		f.trim()
	}
}

// result returns the n least items, sorted.
func (f *firstN[T]) result() []T {
	f.trim()
	return f.items
}

func (f *firstN[T]) trim() {
	slices.SortFunc(f.items, f.cmp)
	if len(f.items) >= f.n {
		f.items = f.items[:f.n]
		f.full, f.bound = true, f.items[f.n-1]
	}
}
