package memory

import (
	"time"

	"github.com/kode4food/timebox"
)

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
