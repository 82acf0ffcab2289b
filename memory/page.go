package memory

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/kode4food/timebox"
)

var _ timebox.PagedQueries = (*Persistence)(nil)

// The memory backend's indexes are hash maps keyed by encoded ID (whose
// byte order is AggregateID.CompareKey), so a page selects from the
// status's or label value's members (not the whole store; ListAggregates
// from every aggregate) those after the cursor, and keeps the first limit.

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
		var sel []entry
		for k, at := range p.status[status] {
			e := entry{k, at}
			if after == nil || cmp(e, entry{afterKey, after.Timestamp}) > 0 {
				sel = append(sel, e)
			}
		}
		slices.SortFunc(sel, cmp)
		for _, e := range sel[:min(limit, len(sel))] {
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
	if after != nil {
		ak := key(after)
		keys = slices.DeleteFunc(keys, func(k string) bool { return k <= ak })
	}
	slices.Sort(keys)
	res := make([]timebox.AggregateID, 0, min(limit, len(keys)))
	for _, k := range keys[:min(limit, len(keys))] {
		res = append(res, p.aggs[k].id.Clone())
	}
	return res
}
