package memory

import (
	"context"
	"time"

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
// index, without looking at any other aggregate.
func (p *Persistence) ListAggregatesByStatus(
	_ context.Context, status string,
) ([]timebox.StatusEntry, error) {
	var res []timebox.StatusEntry
	err := p.read(func() error {
		for k, at := range p.status[status] {
			res = append(res, timebox.StatusEntry{
				ID: p.aggs[k].id.Clone(), Timestamp: at,
			})
		}
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

// ListAggregatesByLabel returns the aggregates whose label has value.
func (p *Persistence) ListAggregatesByLabel(
	_ context.Context, label, value string,
) ([]timebox.AggregateID, error) {
	var res []timebox.AggregateID
	err := p.read(func() error {
		for k := range p.labels[label][value] {
			res = append(res, p.aggs[k].id.Clone())
		}
		return nil
	})
	return res, err
}

// ListAggregates returns the live aggregates whose ID starts with prefix.
func (p *Persistence) ListAggregates(
	_ context.Context, prefix timebox.AggregateID,
) ([]timebox.AggregateID, error) {
	var res []timebox.AggregateID
	err := p.read(func() error {
		for _, a := range p.aggs {
			if a.id.HasPrefix(prefix) {
				res = append(res, a.id.Clone())
			}
		}
		return nil
	})
	return res, err
}

// index applies an appended batch's index change to a, stored under k.
func (p *Persistence) index(k string, a *aggregate, c timebox.IndexChange) {
	if c.Status != nil {
		p.setStatus(k, a, *c.Status, c.StatusTime)
	}
	for label, value := range c.Labels {
		p.setLabel(k, a, label, value)
	}
}

func (p *Persistence) setStatus(k string, a *aggregate, status string, at time.Time) {
	if a.status != "" {
		removeKey(p.status, a.status, k)
	}
	a.status, a.statusTime = status, at
	if status == "" {
		return
	}
	if p.status[status] == nil {
		p.status[status] = map[string]time.Time{}
	}
	p.status[status][k] = at
}

func (p *Persistence) setLabel(k string, a *aggregate, label, value string) {
	if old, ok := a.labels[label]; ok {
		removeKey(p.labels[label], old, k)
		if len(p.labels[label]) == 0 {
			delete(p.labels, label)
		}
		delete(a.labels, label)
	}
	if value == "" {
		return
	}
	if a.labels == nil {
		a.labels = map[string]string{}
	}
	a.labels[label] = value
	if p.labels[label] == nil {
		p.labels[label] = map[string]map[string]struct{}{}
	}
	if p.labels[label][value] == nil {
		p.labels[label][value] = map[string]struct{}{}
	}
	p.labels[label][value][k] = struct{}{}
}

// unindex removes a, stored under k, from every index.
func (p *Persistence) unindex(k string, a *aggregate) {
	p.setStatus(k, a, "", time.Time{})
	for label := range a.labels {
		p.setLabel(k, a, label, "")
	}
}

func removeKey[V any](m map[string]map[string]V, outer, k string) {
	delete(m[outer], k)
	if len(m[outer]) == 0 {
		delete(m, outer)
	}
}
