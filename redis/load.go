package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/codec"
)

// LoadEvents returns the stored events of id from fromSeq on, ascending:
// the batches whose last sequence is at least fromSeq (ZRANGE BYSCORE) and
// the trim floor (HGET), pipelined in that order, so a trim between the
// two only hides more of what was trimmed. A stored event that cannot be
// decoded is an error.
func (p *Persistence) LoadEvents(
	ctx context.Context, id timebox.AggregateID, fromSeq int64,
) ([]*timebox.Event, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	k := p.keys.aggregate(id)
	pipe := p.client.Pipeline()
	rng := pipe.ZRangeArgs(ctx, redis.ZRangeArgs{
		Key:     k.events,
		Start:   strconv.FormatInt(fromSeq, 10),
		Stop:    "+inf",
		ByScore: true,
	})
	trim := pipe.HGet(ctx, k.meta, "t")
	_, _ = pipe.Exec(ctx) // each command's own error is checked below
	batches, err := rng.Result()
	if err != nil {
		return nil, p.readError("load events", err)
	}
	floor, err := trim.Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, p.readError("load events", err)
	}
	var recs []string
	for _, b := range batches {
		r, err := unframe(b)
		if err != nil {
			return nil, fmt.Errorf("redis: load events: %w: %w", codec.ErrMalformedEvent, err)
		}
		recs = append(recs, r...)
	}
	evs, err := decodeFrom(id, recs, max(fromSeq, floor))
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
	evs, err := decodeBatches(id, stored, seq)
	if err != nil {
		return nil, fmt.Errorf("redis: load snapshot: %w", err)
	}
	rec := &timebox.SnapshotRecord{Sequence: seq, Events: evs}
	if data != "" {
		rec.Data = json.RawMessage(data)
	}
	return rec, nil
}
