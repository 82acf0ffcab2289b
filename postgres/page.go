package postgres

import (
	_ "embed"

	"context"
	"math"

	"github.com/jackc/pgx/v5"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/codec"
)

var _ timebox.PagedQueries = (*Persistence)(nil)

// Paged index reads: keyset pagination on the indexes the full lists use.
// aggregate is COLLATE "C", so its order is AggregateID.CompareKey.
var (
	//go:embed sql/page_status.sql
	pageStatusSQL string
	//go:embed sql/page_label.sql
	pageLabelSQL string
	//go:embed sql/page_all.sql
	pageAllSQL string
	//go:embed sql/page_aggregates.sql
	pageAggregatesSQL string
)

// ListAggregatesByStatusAfter pages status by entry time, then key (see
// sql/page_status.sql).
func (p *Persistence) ListAggregatesByStatusAfter(
	ctx context.Context, status string, after *timebox.StatusEntry, limit int,
) ([]timebox.StatusEntry, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	sec, nsec, key := int64(math.MinInt64), int32(-1), ""
	if after != nil {
		sec, nsec = after.Timestamp.Unix(), int32(after.Timestamp.Nanosecond())
		key = codec.EncodeID(after.ID)
	}
	rows, _ := p.pool.Query(ctx, pageStatusSQL,
		p.ns, []byte(status), sec, nsec, key, limit)
	res, err := pgx.CollectRows(rows, scanStatusEntry)
	if err != nil {
		return nil, p.fail(ctx, "page by status", err)
	}
	return res, nil
}

// ListAggregatesByLabelAfter pages the aggregates whose label has value,
// by key (see sql/page_label.sql).
func (p *Persistence) ListAggregatesByLabelAfter(
	ctx context.Context, label, value string, after timebox.AggregateID, limit int,
) ([]timebox.AggregateID, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	rows, _ := p.pool.Query(ctx, pageLabelSQL,
		p.ns, []byte(label), []byte(value), afterKey(after), limit)
	res, err := collectIDs(rows)
	if err != nil {
		return nil, p.fail(ctx, "page by label", err)
	}
	return res, nil
}

// ListAggregatesAfter pages the live aggregates under prefix, by key (see
// sql/page_all.sql and sql/page_aggregates.sql).
func (p *Persistence) ListAggregatesAfter(
	ctx context.Context, prefix, after timebox.AggregateID, limit int,
) ([]timebox.AggregateID, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	var rows pgx.Rows
	if len(prefix) == 0 {
		rows, _ = p.pool.Query(ctx, pageAllSQL, p.ns, afterKey(after), limit)
	} else {
		lo := codec.EncodePrefix(prefix)
		hi := lo[:len(lo)-1] + string(codec.Separator+1)
		rows, _ = p.pool.Query(ctx, pageAggregatesSQL,
			p.ns, codec.EncodeID(prefix), afterKey(after), lo, hi, limit)
	}
	res, err := collectIDs(rows)
	if err != nil {
		return nil, p.fail(ctx, "page aggregates", err)
	}
	return res, nil
}

// afterKey is the encoded cursor ID, "" (before every ID) for none.
func afterKey(after timebox.AggregateID) string {
	if after == nil {
		return ""
	}
	return codec.EncodeID(after)
}
