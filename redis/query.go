package redis

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/codec"
)

// GetAggregateStatus returns id's status, "" when it has none.
func (p *Persistence) GetAggregateStatus(
	ctx context.Context, id timebox.AggregateID,
) (string, error) {
	if err := p.checkOpen(); err != nil {
		return "", err
	}
	enc, err := p.client.HGet(ctx, p.keys.aggregate(id).meta, "st").Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", p.readError("get status", err)
	}
	return decodeName(enc)
}

// ListAggregatesByStatus returns the aggregates in status with the exact
// time each entered it, from one ZRANGE BYLEX of the status set.
func (p *Persistence) ListAggregatesByStatus(
	ctx context.Context, status string,
) ([]timebox.StatusEntry, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	if status == "" {
		return nil, nil
	}
	prefix := encodeName(status) + ":"
	members, err := p.client.ZRangeByLex(ctx, p.keys.status, lexRange(prefix)).Result()
	if err != nil {
		return nil, p.readError("list by status", err)
	}
	return parseStatusMembers(members, prefix)
}

// ListLabelValues returns the values label currently has on any aggregate,
// from one ZRANGE BYLEX of the label-value set.
func (p *Persistence) ListLabelValues(
	ctx context.Context, label string,
) ([]string, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	prefix := encodeName(label) + ":"
	members, err := p.client.ZRangeByLex(ctx, p.keys.values, lexRange(prefix)).Result()
	if err != nil {
		return nil, p.readError("list label values", err)
	}
	res := make([]string, len(members))
	for i, m := range members {
		if res[i], err = decodeName(m[len(prefix):]); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// ListAggregatesByLabel returns the aggregates whose label has value, from
// one ZRANGE BYLEX of the label set.
func (p *Persistence) ListAggregatesByLabel(
	ctx context.Context, label, value string,
) ([]timebox.AggregateID, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	if value == "" {
		return nil, nil
	}
	prefix := encodeName(label) + ":" + encodeName(value) + ":"
	members, err := p.client.ZRangeByLex(ctx, p.keys.label, lexRange(prefix)).Result()
	if err != nil {
		return nil, p.readError("list by label", err)
	}
	for i, m := range members {
		members[i] = m[len(prefix):]
	}
	return decodeIDs(members)
}

// ListAggregates returns the live aggregates whose ID starts with the
// whole parts of prefix: the ID itself (ZSCORE) and the lexical range of
// the encoded IDs under it (ZRANGE BYLEX), in one pipelined round trip.
// Each command's error is checked on its own: only the ZSCORE may answer
// redis.Nil (the prefix is not itself an aggregate).
func (p *Persistence) ListAggregates(
	ctx context.Context, prefix timebox.AggregateID,
) ([]timebox.AggregateID, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	if len(prefix) == 0 {
		members, err := p.client.ZRange(ctx, p.keys.aggs, 0, -1).Result()
		if err != nil {
			return nil, p.readError("list aggregates", err)
		}
		return decodeIDs(members)
	}
	eid, under := codec.EncodeID(prefix), codec.EncodePrefix(prefix)
	pipe := p.client.Pipeline()
	self := pipe.ZScore(ctx, p.keys.aggs, eid)
	rng := pipe.ZRangeByLex(ctx, p.keys.aggs, &redis.ZRangeBy{
		Min: "[" + under,
		Max: "[" + under + "\xff",
	})
	_, _ = pipe.Exec(ctx) // each command's own error is checked below
	members, err := rng.Result()
	if err != nil {
		return nil, p.readError("list aggregates", err)
	}
	switch _, err := self.Result(); {
	case err == nil:
		members = append(members, eid)
	case !errors.Is(err, redis.Nil):
		return nil, p.readError("list aggregates", err)
	}
	return decodeIDs(members)
}

func decodeIDs(members []string) ([]timebox.AggregateID, error) {
	res := make([]timebox.AggregateID, len(members))
	for i, m := range members {
		id, err := codec.DecodeID(m)
		if err != nil {
			return nil, fmt.Errorf("redis: stored aggregate ID %q: %w", m, err)
		}
		res[i] = id
	}
	return res, nil
}

// parseStatusMembers parses members of the status set, each prefix then a
// status member (see parseStatusMember).
func parseStatusMembers(members []string, prefix string) ([]timebox.StatusEntry, error) {
	res := make([]timebox.StatusEntry, len(members))
	for i, m := range members {
		var err error
		if res[i], err = parseStatusMember(m[len(prefix):]); err != nil {
			return nil, err
		}
	}
	return res, nil
}
