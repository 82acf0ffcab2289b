package memory

import (
	"strings"
	"time"

	"github.com/kode4food/timebox"
)

// statusEntry is one member of a status index: ordered by the time it
// entered the status, then by key (the page order of
// ListAggregatesByStatusAfter).
type statusEntry struct {
	at time.Time
	k  string
}

func compareStatus(a, b statusEntry) int {
	if c := a.at.Compare(b.at); c != 0 {
		return c
	}
	return strings.Compare(a.k, b.k)
}

// add creates the aggregate id, stored under k, and adds it to the
// aggregate list. p.mu is held for writing.
func (p *Persistence) add(k string, id timebox.AggregateID) *aggregate {
	a := &aggregate{id: id.Clone()}
	p.aggs[k] = a
	p.keys.insert(k)
	return a
}

// drop removes a, stored under k, from the aggregates and every index.
// p.mu is held for writing.
func (p *Persistence) drop(k string, a *aggregate) {
	p.setStatus(k, a, "", time.Time{})
	for label := range a.labels {
		p.setLabel(k, a, label, "")
	}
	p.keys.delete(k)
	delete(p.aggs, k)
}

// index applies an appended batch's index change to a, stored under k.
// p.mu is held for writing.
func (p *Persistence) index(k string, a *aggregate, c timebox.IndexChange) {
	if c.Status != nil {
		p.setStatus(k, a, *c.Status, c.StatusTime)
	}
	for label, value := range c.Labels {
		p.setLabel(k, a, label, value)
	}
}

// setStatus moves a, stored under k, into status entered at, or out of
// every status when status is "". An aggregate already in status stays in
// it, entered at the time it had. p.mu is held for writing.
func (p *Persistence) setStatus(k string, a *aggregate, status string, at time.Time) {
	if status != "" && status == a.status {
		return
	}
	if a.status != "" {
		removeFrom(p.status, a.status, statusEntry{a.statusTime, k})
	}
	a.status, a.statusTime = status, at
	if status == "" {
		return
	}
	insertInto(p.status, status, statusEntry{at, k}, compareStatus)
}

func (p *Persistence) setLabel(k string, a *aggregate, label, value string) {
	if old, ok := a.labels[label]; ok {
		removeFrom(p.labels[label], old, k)
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
		p.labels[label] = map[string]*btree[string]{}
	}
	insertInto(p.labels[label], value, k, strings.Compare)
}

// insertInto adds v to the tree m[name], making the tree if needed.
func insertInto[T any](m map[string]*btree[T], name string, v T, cmp func(a, b T) int) {
	t := m[name]
	if t == nil {
		t = newBTree(cmp)
		m[name] = t
	}
	t.insert(v)
}

// removeFrom removes v from the tree m[name], and the tree when it empties.
func removeFrom[T any](m map[string]*btree[T], name string, v T) {
	t := m[name]
	if t == nil {
		return
	}
	t.delete(v)
	if t.size == 0 {
		delete(m, name)
	}
}
