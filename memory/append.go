package memory

import (
	"context"

	"github.com/kode4food/timebox"
)

// Append writes req's events and index change if the aggregate's head is
// req.ExpectedSequence, or returns a *timebox.VersionConflictError.
// A ctx already done fails it with ctx's error, writing nothing.
//
// The events are copied before the write lock is taken (the copy is
// dropped on a conflict), so that writers to other aggregates and readers
// wait only for the head check, the pointer appends and the index change.
func (p *Persistence) Append(ctx context.Context, req timebox.AppendRequest) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	k := key(req.ID)
	block := copyBlock(req.Events, nil)
	return p.write(func() error {
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
			a = p.add(k, req.ID)
		}
		commit := p.feed.len() + 1
		for i := range block {
			block[i].AggregateID = a.id
			block[i].Position = timebox.Position{Commit: commit, Offset: uint64(i)}
			a.events = append(a.events, &block[i])
		}
		p.feed.add(block)
		close(p.feedNotify)
		p.feedNotify = make(chan struct{})
		a.head += int64(len(req.Events))
		p.index(k, a, req.Index)
		return nil
	})
}
