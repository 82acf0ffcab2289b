package redis

import (
	"context"
	"fmt"
	"strconv"

	"github.com/kode4food/timebox"
)

// SaveSnapshot runs snapshot.lua: it stores the snapshot unless a newer one
// is stored, moves the head up to it, and with req.Trim removes the events
// below it, in one atomic step sent at most once.
func (p *Persistence) SaveSnapshot(ctx context.Context, req timebox.SnapshotRequest) error {
	if err := p.checkOpen(); err != nil {
		return err
	}
	if req.Sequence > MaxSequence {
		return fmt.Errorf("%w: redis keeps sequences up to %d, not %d",
			timebox.ErrInvalidSequence, MaxSequence, req.Sequence)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	k := p.keys.aggregate(req.ID)
	trim := "0"
	if req.Trim {
		trim = "1"
	}
	_, err := p.run(ctx, snapshotScript, true,
		[]string{k.meta, k.events, p.keys.aggs},
		k.eid, strconv.FormatInt(req.Sequence, 10), []byte(req.Data), trim,
	)
	return p.writeError("save snapshot", err)
}
