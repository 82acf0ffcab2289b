package redis

import (
	"context"
	"errors"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/codec"
)

var _ timebox.PagedQueries = (*Persistence)(nil)

// Every index set is scored 0 and ordered by member, and every member
// ends in the encoded ID, whose byte order is AggregateID.CompareKey; so a
// page is one ZRANGE BYLEX from just after the cursor's member, with
// LIMIT: O(log n + limit), whatever the set's size.

// ListAggregatesByStatusAfter pages status by entry time, then key.
func (p *Persistence) ListAggregatesByStatusAfter(
	ctx context.Context, status string, after *timebox.StatusEntry, limit int,
) ([]timebox.StatusEntry, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	if status == "" {
		return nil, nil
	}
	prefix := encodeName(status) + ":"
	var from string
	if after != nil {
		from = statusTime(after.Timestamp) + codec.EncodeID(after.ID)
	}
	members, err := p.client.ZRangeByLex(ctx, p.keys.status,
		pageRange(prefix, from, limit)).Result()
	if err != nil {
		return nil, p.readError("page by status", err)
	}
	return parseStatusMembers(members, prefix)
}

// ListAggregatesByLabelAfter pages the aggregates whose label has value,
// by key.
func (p *Persistence) ListAggregatesByLabelAfter(
	ctx context.Context, label, value string, after timebox.AggregateID, limit int,
) ([]timebox.AggregateID, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	if value == "" {
		return nil, nil
	}
	prefix := encodeName(label) + ":" + encodeName(value) + ":"
	var from string
	if after != nil {
		from = codec.EncodeID(after)
	}
	members, err := p.client.ZRangeByLex(ctx, p.keys.label,
		pageRange(prefix, from, limit)).Result()
	if err != nil {
		return nil, p.readError("page by label", err)
	}
	for i, m := range members {
		members[i] = m[len(prefix):]
	}
	return decodeIDs(members)
}

// ListAggregatesAfter pages the live aggregates under prefix, by key: the
// prefix itself (which sorts first) and then the range of the IDs under
// it, from the cursor on.
func (p *Persistence) ListAggregatesAfter(
	ctx context.Context, prefix, after timebox.AggregateID, limit int,
) ([]timebox.AggregateID, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	var from string
	if after != nil {
		from = codec.EncodeID(after)
	}
	if len(prefix) == 0 {
		return p.pageAggs(ctx, "", from, limit, nil)
	}
	eid, under := codec.EncodeID(prefix), codec.EncodePrefix(prefix)
	switch {
	case strings.HasPrefix(from, under):
		return p.pageAggs(ctx, under, from[len(under):], limit, nil)
	case from > under:
		// The cursor is an ID elsewhere (a cursor of another listing),
		// after every ID under prefix.
		return []timebox.AggregateID{}, nil
	}
	var self []string
	if from < eid {
		switch _, err := p.client.ZScore(ctx, p.keys.aggs, eid).Result(); {
		case err == nil:
			self = []string{eid}
			limit--
		case !errors.Is(err, redis.Nil):
			return nil, p.readError("page aggregates", err)
		}
	}
	return p.pageAggs(ctx, under, "", limit, self)
}

// pageAggs returns first and then up to limit live aggregates under the
// encoded prefix under, after under+from ("": from the first).
func (p *Persistence) pageAggs(
	ctx context.Context, under, from string, limit int, first []string,
) ([]timebox.AggregateID, error) {
	if limit > 0 {
		members, err := p.client.ZRangeByLex(ctx, p.keys.aggs,
			pageRange(under, from, limit)).Result()
		if err != nil {
			return nil, p.readError("page aggregates", err)
		}
		first = append(first, members...)
	}
	return decodeIDs(first)
}

// pageRange returns the ZRANGE BYLEX bounds and LIMIT of up to limit
// members that start with prefix and sort after prefix+from ("": from the
// first).
func pageRange(prefix, from string, limit int) *redis.ZRangeBy {
	r := lexRange(prefix)
	if from != "" {
		r.Min = "(" + prefix + from
	}
	r.Count = int64(limit)
	return r
}
