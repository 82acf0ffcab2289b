package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/kode4food/timebox"
)

// LoadEvents returns the stored events of id from fromSeq on, ascending, in
// one ZRANGE BYSCORE. A stored event that cannot be decoded is an error.
func (p *Persistence) LoadEvents(
	ctx context.Context, id timebox.AggregateID, fromSeq int64,
) ([]*timebox.Event, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	k := p.keys.aggregate(id)
	strs, err := p.client.ZRangeArgs(ctx, redis.ZRangeArgs{
		Key:     k.events,
		Start:   strconv.FormatInt(fromSeq, 10),
		Stop:    "+inf",
		ByScore: true,
	}).Result()
	if err != nil {
		return nil, p.readError("load events", err)
	}
	evs, err := decodeStrings(id, strs)
	if err != nil {
		return nil, fmt.Errorf("redis: load events: %w", err)
	}
	return evs, nil
}

// LoadSnapshot returns id's snapshot and the events stored from its
// sequence on, read atomically by load.lua in one round trip.
func (p *Persistence) LoadSnapshot(
	ctx context.Context, id timebox.AggregateID,
) (*timebox.SnapshotRecord, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	k := p.keys.aggregate(id)
	res, err := p.run(ctx, loadScript, false, []string{k.meta, k.events})
	if err != nil {
		return nil, p.readError("load snapshot", err)
	}
	r, ok := res.([]any)
	if !ok || len(r) != 3 {
		return nil, fmt.Errorf("redis: load snapshot: unexpected reply %v", res)
	}
	data, _ := r[0].(string)
	seq, err := strconv.ParseInt(fmt.Sprint(r[1]), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("redis: load snapshot: sequence: %w", err)
	}
	stored, _ := r[2].([]any)
	evs, err := decodeEvents(id, stored)
	if err != nil {
		return nil, fmt.Errorf("redis: load snapshot: %w", err)
	}
	rec := &timebox.SnapshotRecord{Sequence: seq, Events: evs}
	if data != "" {
		rec.Data = json.RawMessage(data)
	}
	return rec, nil
}
