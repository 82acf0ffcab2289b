package postgres

import (
	"context"
	"slices"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/codec"
)

// LoadSnapshot returns id's latest snapshot and the events stored from its
// sequence on, read by one statement (so from one database snapshot) in
// one round trip. Data is empty and Sequence 0 when there is no snapshot.
func (p *Persistence) LoadSnapshot(
	ctx context.Context, id timebox.AggregateID,
) (*timebox.SnapshotRecord, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	rec, err := p.loadSnapshot(ctx, id)
	if err != nil {
		return nil, p.fail(ctx, "load snapshot", err)
	}
	return rec, nil
}

func (p *Persistence) loadSnapshot(
	ctx context.Context, id timebox.AggregateID,
) (*timebox.SnapshotRecord, error) {
	rows, _ := p.pool.Query(ctx, loadSnapshotSQL, p.ns, codec.EncodeID(id))
	defer rows.Close()
	id = slices.Clone(id)
	rec := &timebox.SnapshotRecord{Events: []*timebox.Event{}}
	var alloc codec.EventAlloc
	for rows.Next() {
		var snap bool
		var f codec.EventFields
		err := rows.Scan(&snap, &f.Sequence, &f.Sec, &f.Nsec, &f.Type, &f.Data, &f.ID, &f.Metadata)
		if err != nil {
			return nil, err
		}
		if snap {
			rec.Sequence, rec.Data = f.Sequence, f.Data
			continue
		}
		ev, err := alloc.Event(&f, id)
		if err != nil {
			return nil, err
		}
		rec.Events = append(rec.Events, ev)
	}
	return rec, rows.Err()
}

// SaveSnapshot stores req through timebox_save_snapshot (see schema.sql)
// in one round trip: a snapshot older than the stored one is ignored, an
// equal one replaces it, one beyond the head moves the head, and with
// req.Trim the events below the stored snapshot are deleted, all in one
// transaction. With req.IfHead it runs save_snapshot_if_head.sql instead:
// one statement that stores the snapshot only while the aggregate is live
// and its head is req.Sequence, and otherwise writes nothing and returns
// timebox.ErrSnapshotSkipped.
func (p *Persistence) SaveSnapshot(
	ctx context.Context, req timebox.SnapshotRequest,
) error {
	if err := p.checkOpen(); err != nil {
		return err
	}
	key, err := writeKey(req.ID)
	if err != nil {
		return err
	}
	if !req.IfHead {
		_, err = p.pool.Exec(ctx, saveSnapshotSQL,
			p.ns, key, req.Sequence, []byte(req.Data), req.Trim,
		)
		if err != nil {
			return p.fail(ctx, "save snapshot", err)
		}
		return nil
	}
	var stored int64
	err = p.pool.QueryRow(ctx, saveSnapshotIfHeadSQL,
		p.ns, key, req.Sequence, []byte(req.Data), req.Trim,
	).Scan(&stored)
	switch {
	case err != nil:
		return p.fail(ctx, "save snapshot", err)
	case stored == 0:
		return timebox.ErrSnapshotSkipped
	}
	return nil
}
