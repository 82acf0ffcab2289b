package memory

import (
	"context"

	"github.com/kode4food/timebox"
)

// SaveSnapshot stores req's snapshot unless a newer one is stored, moves
// the head up to it, and trims the events below it when asked. With
// req.IfHead it writes nothing unless the aggregate is live (archived ones
// are gone from p.aggs) and its head is req.Sequence, and otherwise
// returns timebox.ErrSnapshotSkipped.
func (p *Persistence) SaveSnapshot(_ context.Context, req timebox.SnapshotRequest) error {
	return p.write(func() error {
		k := key(req.ID)
		a := p.aggs[k]
		if req.IfHead && (a == nil || a.head != req.Sequence) {
			return timebox.ErrSnapshotSkipped
		}
		if a == nil {
			a = p.add(k, req.ID)
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
