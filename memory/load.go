package memory

import (
	"context"

	"github.com/kode4food/timebox"
)

// LoadEvents returns copies of id's events with sequence at least fromSeq.
func (p *Persistence) LoadEvents(
	_ context.Context, id timebox.AggregateID, fromSeq int64,
) ([]*timebox.Event, error) {
	var res []*timebox.Event
	err := p.read(func() error {
		if a := p.aggs[key(id)]; a != nil {
			res = a.eventsFrom(fromSeq)
		}
		return nil
	})
	return res, err
}

// LoadSnapshot returns id's snapshot and the events from its sequence on.
func (p *Persistence) LoadSnapshot(
	_ context.Context, id timebox.AggregateID,
) (*timebox.SnapshotRecord, error) {
	res := &timebox.SnapshotRecord{}
	err := p.read(func() error {
		if a := p.aggs[key(id)]; a != nil {
			res.Data = append([]byte(nil), a.snapshot...)
			res.Sequence = a.snapSeq
			res.Events = a.eventsFrom(a.snapSeq)
		}
		return nil
	})
	return res, err
}
