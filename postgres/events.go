package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

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
	for rows.Next() {
		var seq, sec int64
		var nsec int32
		var typ, data, eid, md []byte
		if err := rows.Scan(&seq, &sec, &nsec, &typ, &data, &eid, &md); err != nil {
			return nil, err
		}
		ev, err := newEvent(id, seq, sec, nsec, typ, data, eid, md)
		if err != nil {
			return nil, err
		}
		evs = append(evs, ev)
	}
	return evs, rows.Err()
}

// errMalformedMetadata reports a metadata column that
// codec.AppendMetadata cannot have written.
var errMalformedMetadata = errors.New("postgres: malformed event metadata")

// newEvent builds an event of id from its columns; eid and md are NULL
// (nil) for an event written before schema 2, or without metadata.
func newEvent(
	id timebox.AggregateID, seq, sec int64, nsec int32, typ, data, eid, md []byte,
) (*timebox.Event, error) {
	ev := &timebox.Event{
		Timestamp:   unixTime(sec, nsec),
		Sequence:    seq,
		Type:        timebox.EventType(typ),
		AggregateID: id,
		Data:        data,
		ID:          string(eid),
	}
	if md != nil {
		r := codec.NewReader(md)
		if ev.Metadata = r.Metadata(); r.Bad() || r.Len() != 0 {
			return nil, fmt.Errorf("%w at %d", errMalformedMetadata, seq)
		}
	}
	return ev, nil
}

func unixTime(sec int64, nsec int32) time.Time {
	return time.Unix(sec, int64(nsec)).UTC()
}
