package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/codec"
)

// GetAggregateStatus returns id's status, "" when it has none, by a
// primary-key lookup in timebox_index.
func (p *Persistence) GetAggregateStatus(
	ctx context.Context, id timebox.AggregateID,
) (string, error) {
	if err := p.checkOpen(); err != nil {
		return "", err
	}
	var status []byte
	err := p.pool.QueryRow(ctx, statusSQL, p.ns, codec.EncodeID(id)).Scan(&status)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return "", nil
	case err != nil:
		return "", p.fail(ctx, "get status", err)
	}
	return string(status), nil
}

// ListAggregatesByStatus returns the aggregates in status with the time
// each entered it, by a range scan of timebox_index_lookup.
func (p *Persistence) ListAggregatesByStatus(
	ctx context.Context, status string,
) ([]timebox.StatusEntry, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	rows, _ := p.pool.Query(ctx, listStatusSQL, p.ns, []byte(status))
	res, err := pgx.CollectRows(rows, scanStatusEntry)
	if err != nil {
		return nil, p.fail(ctx, "list by status", err)
	}
	return res, nil
}

// ListLabelValues returns the distinct values label has, by a range scan
// of timebox_index_lookup.
func (p *Persistence) ListLabelValues(
	ctx context.Context, label string,
) ([]string, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	rows, _ := p.pool.Query(ctx, labelValuesSQL, p.ns, []byte(label))
	res, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var v []byte
		err := r.Scan(&v)
		return string(v), err
	})
	if err != nil {
		return nil, p.fail(ctx, "list label values", err)
	}
	return res, nil
}

// ListAggregatesByLabel returns the aggregates whose label has value, by a
// range scan of timebox_index_lookup.
func (p *Persistence) ListAggregatesByLabel(
	ctx context.Context, label, value string,
) ([]timebox.AggregateID, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	rows, _ := p.pool.Query(ctx, listLabelSQL, p.ns, []byte(label), []byte(value))
	res, err := collectIDs(rows)
	if err != nil {
		return nil, p.fail(ctx, "list by label", err)
	}
	return res, nil
}

// ListAggregates returns every live aggregate whose ID starts with the
// whole parts of prefix (all of them for an empty prefix), by a range scan
// of timebox_snapshot's primary key: an aggregate has a row there from its
// first event or snapshot on, even once its events are trimmed.
func (p *Persistence) ListAggregates(
	ctx context.Context, prefix timebox.AggregateID,
) ([]timebox.AggregateID, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	var rows pgx.Rows
	if len(prefix) == 0 {
		rows, _ = p.pool.Query(ctx, listAllSQL, p.ns)
	} else {
		lo := codec.EncodePrefix(prefix)
		hi := lo[:len(lo)-1] + string(codec.Separator+1)
		rows, _ = p.pool.Query(ctx, listAggregatesSQL,
			p.ns, codec.EncodeID(prefix), lo, hi,
		)
	}
	res, err := collectIDs(rows)
	if err != nil {
		return nil, p.fail(ctx, "list aggregates", err)
	}
	return res, nil
}

func collectIDs(rows pgx.Rows) ([]timebox.AggregateID, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (timebox.AggregateID, error) {
		var key string
		if err := r.Scan(&key); err != nil {
			return nil, err
		}
		return codec.DecodeID(key)
	})
}

// scanStatusEntry reads a status entry row: the encoded ID, then the
// seconds and nanoseconds of the time the aggregate entered the status.
func scanStatusEntry(r pgx.CollectableRow) (timebox.StatusEntry, error) {
	var key string
	var sec int64
	var nsec int32
	if err := r.Scan(&key, &sec, &nsec); err != nil {
		return timebox.StatusEntry{}, err
	}
	id, err := codec.DecodeID(key)
	return timebox.StatusEntry{ID: id, Timestamp: unixTime(sec, nsec)}, err
}
