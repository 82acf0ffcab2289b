package memory

import (
	"context"
	"strings"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/codec"
)

var _ timebox.PagedQueries = (*Persistence)(nil)

// Each paged query reads one range of an ordered index (see btree.go):
// the status's tree of (entry time, key), the label value's tree of keys,
// or the tree of every live key. Keys are encoded IDs, whose byte order is
// AggregateID.CompareKey. The page starts just after the cursor (for a key
// k, the first entry not below k+"\x00", the least string above k), so a
// page costs O(log n + limit) whatever the set's size and the page's
// depth, and an entry that stays put keeps its place between pages.

// ListAggregatesByStatusAfter pages status by entry time, then key.
func (p *Persistence) ListAggregatesByStatusAfter(
	_ context.Context, status string, after *timebox.StatusEntry, limit int,
) ([]timebox.StatusEntry, error) {
	var from *statusEntry
	if after != nil {
		from = &statusEntry{after.Timestamp, successor(key(after.ID))}
	}
	var res []timebox.StatusEntry
	err := p.read(func() error {
		p.status[status].ascend(from, func(e statusEntry) bool {
			if len(res) == limit {
				return false
			}
			res = append(res, timebox.StatusEntry{ID: p.aggs[e.k].id.Clone(), Timestamp: e.at})
			return true
		})
		return nil
	})
	return res, err
}

// ListAggregatesByLabelAfter pages the aggregates whose label has value,
// by key.
func (p *Persistence) ListAggregatesByLabelAfter(
	_ context.Context, label, value string, after timebox.AggregateID, limit int,
) ([]timebox.AggregateID, error) {
	var from *string
	if after != nil {
		s := successor(key(after))
		from = &s
	}
	var res []timebox.AggregateID
	err := p.read(func() error {
		p.labels[label][value].ascend(from, func(k string) bool {
			if len(res) == limit {
				return false
			}
			res = append(res, p.aggs[k].id.Clone())
			return true
		})
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
		res = p.list(prefix, after, limit)
		return nil
	})
	return res, err
}

// list returns the IDs of up to limit live aggregates that start with the
// whole parts of prefix, after after (nil: from the first), by key. It
// reads the aggregate whose ID is prefix, which sorts before all others
// under it, then the range of keys that start with prefix's encoding and
// the separator. p.mu is held.
func (p *Persistence) list(prefix, after timebox.AggregateID, limit int) []timebox.AggregateID {
	var res []timebox.AggregateID
	var from string
	if after != nil {
		from = successor(key(after))
	}
	under := codec.EncodePrefix(prefix)
	if len(prefix) > 0 {
		self := key(prefix)
		if a := p.aggs[self]; a != nil && from <= self && limit > 0 {
			res = append(res, a.id.Clone())
		}
		from = max(from, under)
	}
	p.keys.ascend(&from, func(k string) bool {
		if len(res) == limit || !strings.HasPrefix(k, under) {
			return false
		}
		res = append(res, p.aggs[k].id.Clone())
		return true
	})
	return res
}

// successor returns the least string above k.
func successor(k string) string {
	return k + "\x00"
}
