package memory

import (
	"context"
	"strconv"

	"github.com/kode4food/timebox"
)

// Archive moves id's snapshot and events into the archive as one record
// and removes its live records and index entries, atomically. An unknown
// aggregate is a no-op.
func (p *Persistence) Archive(_ context.Context, id timebox.AggregateID) error {
	return p.write(func() error {
		k := key(id)
		a := p.aggs[k]
		if a == nil {
			return nil
		}
		p.streamID++
		p.archive = append(p.archive, &timebox.ArchiveRecord{
			StreamID:         strconv.FormatInt(p.streamID, 10),
			AggregateID:      a.id,
			SnapshotData:     a.snapshot,
			SnapshotSequence: a.snapSeq,
			Events:           a.events,
		})
		p.drop(k, a)
		p.wake()
		return nil
	})
}

// ConsumeArchive waits for the oldest archive record and passes a copy to
// handler. The record is dropped when handler succeeds and put back at the
// front when it returns an error, panics or calls runtime.Goexit, so the
// next call gets it again; a panic goes on up to the caller.
func (p *Persistence) ConsumeArchive(
	ctx context.Context, handler timebox.ArchiveHandler,
) error {
	rec, err := p.takeRecord(ctx)
	if err != nil {
		return err
	}
	handled := false
	defer func() {
		if !handled {
			p.putBack(rec)
		}
	}()
	if err := handler(ctx, copyRecord(rec)); err != nil {
		return err
	}
	handled = true
	return nil
}

// putBack returns rec to the front of the archive, so the next consumer
// gets it first.
func (p *Persistence) putBack(rec *timebox.ArchiveRecord) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.archive = append([]*timebox.ArchiveRecord{rec}, p.archive...)
	p.wake()
}

func (p *Persistence) takeRecord(ctx context.Context) (*timebox.ArchiveRecord, error) {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, timebox.ErrClosed
		}
		if len(p.archive) > 0 {
			rec := p.archive[0]
			p.archive = p.archive[1:]
			p.mu.Unlock()
			return rec, nil
		}
		notify := p.notify
		p.mu.Unlock()
		select {
		case <-notify:
		case <-p.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// wake tells waiting consumers that the archive changed; p.mu is held.
func (p *Persistence) wake() {
	close(p.notify)
	p.notify = make(chan struct{})
}

func copyRecord(r *timebox.ArchiveRecord) *timebox.ArchiveRecord {
	res := *r
	res.AggregateID = r.AggregateID.Clone()
	res.SnapshotData = append([]byte{}, r.SnapshotData...)
	res.Events = copyEvents(r.Events, res.AggregateID)
	return &res
}
