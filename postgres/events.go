package postgres

import (
	"context"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/codec"
)

// LoadEvents returns id's stored events with sequence at least fromSeq,
// ascending, by a range scan of timebox_events' primary key.
func (p *Persistence) LoadEvents(
	ctx context.Context, id timebox.AggregateID, fromSeq int64,
) ([]*timebox.Event, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	rows, _ := p.pool.Query(ctx, loadEventsSQL, p.ns, codec.EncodeID(id), fromSeq)
	evs, err := scanEvents(rows, slices.Clone(id))
	if err != nil {
		return nil, p.fail(ctx, "load events", err)
	}
	return evs, nil
}

func scanEvents(rows pgx.Rows, id timebox.AggregateID) ([]*timebox.Event, error) {
	defer rows.Close()
	evs := []*timebox.Event{}
	// The driver's bytes, valid until the next row: the EventAlloc copies.
	var typ, data, eid, md pgtype.DriverBytes
	var f codec.EventFields
	var alloc codec.EventAlloc
	for rows.Next() {
		err := rows.Scan(&f.Sequence, &f.Sec, &f.Nsec, &typ, &data, &eid, &md)
		if err != nil {
			return nil, err
		}
		f.Type, f.Data, f.ID, f.Metadata = typ, data, eid, md
		ev, err := alloc.Event(&f, id)
		if err != nil {
			return nil, err
		}
		evs = append(evs, ev)
	}
	return evs, rows.Err()
}

func unixTime(sec int64, nsec int32) time.Time {
	return time.Unix(sec, int64(nsec)).UTC()
}
