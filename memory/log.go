package memory

import (
	"context"

	"github.com/kode4food/timebox"
)

// Append writes req's events and index change if the aggregate's head is
// req.ExpectedSequence, or returns a *timebox.VersionConflictError.
// A ctx already done fails it with ctx's error, writing nothing.
func (p *Persistence) Append(ctx context.Context, req timebox.AppendRequest) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return p.write(func() error {
		k := key(req.ID)
		a := p.aggs[k]
		var head int64
		if a != nil {
			head = a.head
		}
		if head != req.ExpectedSequence {
			conflict := &timebox.VersionConflictError{
				ExpectedSequence: req.ExpectedSequence,
				ActualSequence:   head,
				NewEvents:        []*timebox.Event{},
			}
			if a != nil && req.ExpectedSequence < head {
				conflict.NewEvents = a.eventsFrom(req.ExpectedSequence)
			}
			return conflict
		}
		if len(req.Events) == 0 {
			return nil
		}
		if a == nil {
			a = &aggregate{id: req.ID.Clone()}
			p.aggs[k] = a
		}
		for _, ev := range req.Events {
			a.events = append(a.events, copyEvent(ev, a.id))
		}
		a.head += int64(len(req.Events))
		p.index(k, a, req.Index)
		return nil
	})
}

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

// SaveSnapshot stores req's snapshot unless a newer one is stored, moves
// the head up to it, and trims the events below it when asked.
func (p *Persistence) SaveSnapshot(_ context.Context, req timebox.SnapshotRequest) error {
	return p.write(func() error {
		k := key(req.ID)
		a := p.aggs[k]
		if a == nil {
			a = &aggregate{id: req.ID.Clone()}
			p.aggs[k] = a
		}
		if a.snapshot != nil && req.Sequence < a.snapSeq {
			return nil
		}
		a.snapshot = append([]byte{}, req.Data...)
		a.snapSeq = req.Sequence
		a.head = max(a.head, req.Sequence)
		if req.Trim {
			a.events = a.events[a.from(req.Sequence):]
		}
		return nil
	})
}
