package memory

import (
	"context"
	"math"

	"github.com/kode4food/timebox"
)

// GetAggregateStatus returns id's status, "" when it has none.
func (p *Persistence) GetAggregateStatus(
	_ context.Context, id timebox.AggregateID,
) (string, error) {
	var res string
	err := p.read(func() error {
		if a := p.aggs[key(id)]; a != nil {
			res = a.status
		}
		return nil
	})
	return res, err
}

// ListAggregatesByStatus returns the aggregates in status from the status
// index, without looking at any other aggregate, in page order.
func (p *Persistence) ListAggregatesByStatus(
	_ context.Context, status string,
) ([]timebox.StatusEntry, error) {
	var res []timebox.StatusEntry
	err := p.read(func() error {
		p.status[status].ascend(nil, func(e statusEntry) bool {
			res = append(res, timebox.StatusEntry{
				ID: p.aggs[e.k].id.Clone(), Timestamp: e.at,
			})
			return true
		})
		return nil
	})
	return res, err
}

// ListLabelValues returns the values label has on some aggregate.
func (p *Persistence) ListLabelValues(
	_ context.Context, label string,
) ([]string, error) {
	var res []string
	err := p.read(func() error {
		for v := range p.labels[label] {
			res = append(res, v)
		}
		return nil
	})
	return res, err
}

// ListAggregatesByLabel returns the aggregates whose label has value, by
// key.
func (p *Persistence) ListAggregatesByLabel(
	_ context.Context, label, value string,
) ([]timebox.AggregateID, error) {
	var res []timebox.AggregateID
	err := p.read(func() error {
		p.labels[label][value].ascend(nil, func(k string) bool {
			res = append(res, p.aggs[k].id.Clone())
			return true
		})
		return nil
	})
	return res, err
}

// ListAggregates returns the live aggregates whose ID starts with prefix,
// by key, from the range of the aggregate list under prefix.
func (p *Persistence) ListAggregates(
	_ context.Context, prefix timebox.AggregateID,
) ([]timebox.AggregateID, error) {
	var res []timebox.AggregateID
	err := p.read(func() error {
		res = p.list(prefix, nil, math.MaxInt)
		return nil
	})
	return res, err
}
