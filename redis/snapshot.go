package redis

import (
	"context"
	"fmt"
	"strconv"

	"github.com/kode4food/timebox"
)

// SaveSnapshot runs snapshot.lua: it stores the snapshot unless a newer one
// is stored, moves the head up to it, and with req.Trim removes the events
// below it, in one atomic step sent at most once. With req.IfHead the
// script stores nothing unless the aggregate is live and its head is
// req.Sequence, and then SaveSnapshot returns timebox.ErrSnapshotSkipped.
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
	res, err := p.run(ctx, snapshotScript, true,
		[]string{k.meta, k.events, p.keys.aggs},
		k.eid, strconv.FormatInt(req.Sequence, 10), []byte(req.Data),
		flag(req.Trim), flag(req.IfHead),
	)
	if err != nil {
		return p.writeError("save snapshot", err)
	}
	if stored, ok := res.(int64); req.IfHead && ok && stored == 0 {
		return timebox.ErrSnapshotSkipped
	}
	return nil
}

// flag is a boolean script argument.
func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
