package redis

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/kode4food/timebox"
)

// LoadEvents returns the stored events of id from fromSeq on, ascending,
// read by load.lua in one consistent step: the batches whose last
// sequence is at least fromSeq, from the feed entries the batch set names
// (or the batches themselves, as older versions stored them), and the
// trim floor, below which events are dropped. A stored event that cannot
// be decoded, or a feed entry that is missing, is an error.
func (p *Persistence) LoadEvents(
	ctx context.Context, id timebox.AggregateID, fromSeq int64,
) ([]*timebox.Event, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	_, _, evs, err := p.load(ctx, "load events", id, strconv.FormatInt(fromSeq, 10), fromSeq)
	return evs, err
}

// LoadSnapshot returns id's snapshot and the events stored from its
// sequence on, read atomically by load.lua in one round trip.
func (p *Persistence) LoadSnapshot(
	ctx context.Context, id timebox.AggregateID,
) (*timebox.SnapshotRecord, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	data, seq, evs, err := p.load(ctx, "load snapshot", id, "", 0)
	if err != nil {
		return nil, err
	}
	rec := &timebox.SnapshotRecord{Sequence: seq, Events: evs}
	if data != "" {
		rec.Data = json.RawMessage(data)
	}
	return rec, nil
}

// load runs load.lua from sequence from ("" for the snapshot's) and
// returns the snapshot data (only when from is ""), the sequence read
// from, and the events from there on, none below least or the trim floor.
// Errors name op: readError's, a malformed reply, or a decoding error.
func (p *Persistence) load(
	ctx context.Context, op string, id timebox.AggregateID, from string, least int64,
) (string, int64, []*timebox.Event, error) {
	k := p.keys.aggregate(id)
	res, err := p.run(ctx, loadScript, false,
		[]string{k.meta, k.events, p.keys.feed}, from, k.eid)
	if err != nil {
		return "", 0, nil, p.readError(op, err)
	}
	r, ok := res.([]any)
	if !ok || len(r) != 4 {
		return "", 0, nil, fmt.Errorf("redis: %s: unexpected reply %v", op, res)
	}
	data, _ := r[0].(string)
	seq, err1 := strconv.ParseInt(fmt.Sprint(r[1]), 10, 64)
	floor, err2 := strconv.ParseInt(fmt.Sprint(r[2]), 10, 64)
	if err := cmp.Or(err1, err2); err != nil {
		return "", 0, nil, fmt.Errorf("redis: %s: malformed sequence: %w", op, err)
	}
	stored, _ := r[3].([]any)
	evs, err := decodeBatches(id, stored, max(seq, floor, least))
	if err != nil {
		return "", 0, nil, fmt.Errorf("redis: %s: %w", op, err)
	}
	return data, seq, evs, nil
}
