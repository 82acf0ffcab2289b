package redis

import (
	"context"
	"fmt"
	"strconv"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/codec"
)

// Append runs append.lua: in one atomic step it checks the head, appends
// the batch and applies the index change, or returns a
// *timebox.VersionConflictError with the events from the expected sequence
// on. Every key the script may write is named in its KEYS, and it writes
// nothing until every check has passed, so an error reply means nothing
// was written. The script is sent at most once; when its reply is lost, or
// it failed after it began writing, the error matches
// timebox.ErrUnknownOutcome.
func (p *Persistence) Append(ctx context.Context, req timebox.AppendRequest) error {
	if err := p.checkOpen(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	k := p.keys.aggregate(req.ID)
	res, err := p.run(ctx, appendScript, true,
		p.appendKeys(k, req.ExpectedSequence, req.Index), appendArgs(k.eid, req)...,
	)
	if err != nil {
		return p.writeError("append", err)
	}
	return p.appendResult(req, res)
}

// appendKeys lists the keys append.lua may touch: the aggregate's and the
// feed always, the aggregate list only for a first append (expected
// sequence 0), the index sets only when the batch changes that part of
// the index, so a store that never indexes never names (nor waits for,
// while a slot migrates) a set that does not exist.
func (p *Persistence) appendKeys(k aggregate, expected int64, ix timebox.IndexChange) []string {
	ks := make([]string, 3, 7)
	ks[0], ks[1], ks[2] = k.meta, k.events, p.keys.feed
	if expected == 0 {
		ks = append(ks, p.keys.aggs)
	}
	if ix.Status != nil {
		ks = append(ks, p.keys.status)
	}
	if len(ix.Labels) > 0 {
		ks = append(ks, p.keys.label, p.keys.values)
	}
	return ks
}

// appendArgs lists append.lua's arguments: the sequences as decimal
// strings, the framed batch, and the index change only when there is one.
func appendArgs(eid string, req timebox.AppendRequest) []any {
	seq, n := req.ExpectedSequence, int64(len(req.Events))
	var batch []byte
	if n > 0 {
		batch = frameBatch(seq, req.Events)
	}
	args := make([]any, 0, 9+2*len(req.Index.Labels))
	args = append(args, eid, strconv.FormatInt(seq, 10),
		strconv.FormatInt(seq+n-1, 10), strconv.FormatInt(seq+n, 10), batch)
	if req.Index.IsZero() {
		return args
	}
	op, status, at := statusArgs(req.Index)
	args = append(args, op, status, at, len(req.Index.Labels))
	for l, v := range req.Index.Labels {
		args = append(args, encodeName(l), encodeName(v))
	}
	return args
}

// frameBatch encodes evs, at sequences from seq on, as one batch member:
// each event's codec record framed as "<length>:<record>", the framing
// archive entries use too.
func frameBatch(seq int64, evs []*timebox.Event) []byte {
	size := 0
	for _, ev := range evs {
		size += 24 + len(ev.Type) + len(ev.Data)
	}
	buf := make([]byte, 0, size)
	var rec []byte
	for i, ev := range evs {
		e := *ev
		e.Sequence = seq + int64(i)
		rec = codec.AppendEvent(rec[:0], &e)
		buf = strconv.AppendInt(buf, int64(len(rec)), 10)
		buf = append(buf, ':')
		buf = append(buf, rec...)
	}
	return buf
}

// statusArgs returns the script's status operation, the encoded status and
// the time part of its member.
func statusArgs(ix timebox.IndexChange) (op, status, at string) {
	switch {
	case ix.Status == nil:
		return "", "", ""
	case *ix.Status == "":
		return "c", "", ""
	}
	return "s", encodeName(*ix.Status), statusTime(ix.StatusTime)
}

// appendResult reads append.lua's reply: 1 when written, else a conflict
// (see append.lua) returned as a *timebox.VersionConflictError.
func (p *Persistence) appendResult(req timebox.AppendRequest, res any) error {
	if res == int64(1) {
		return nil
	}
	r, ok := res.([]any)
	if !ok || len(r) < 2 {
		return fmt.Errorf("redis: append: unexpected reply %v", res)
	}
	if written, _ := r[0].(int64); written == 1 {
		return nil
	}
	head, _ := r[1].(int64)
	var stored []any
	floor := int64(0)
	if len(r) > 3 {
		stored, _ = r[2].([]any)
		floor, _ = strconv.ParseInt(fmt.Sprint(r[3]), 10, 64)
	}
	evs, err := decodeBatches(req.ID, stored, max(req.ExpectedSequence, floor))
	if err != nil {
		return fmt.Errorf("redis: append: %w", err)
	}
	return &timebox.VersionConflictError{
		ExpectedSequence: req.ExpectedSequence,
		ActualSequence:   head,
		NewEvents:        evs,
	}
}

// decodeBatches decodes stored batch members (strings) of id, keeping
// the events from sequence from on. The events share one copy of the
// records' bytes (see codec.DecodeEvents).
func decodeBatches(id timebox.AggregateID, stored []any, from int64) ([]*timebox.Event, error) {
	var recs []string
	for _, s := range stored {
		str, ok := s.(string)
		if !ok {
			return nil, fmt.Errorf("%w: not a string", codec.ErrMalformedEvent)
		}
		r, err := unframe(str)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", codec.ErrMalformedEvent, err)
		}
		recs = append(recs, r...)
	}
	return decodeFrom(id, recs, from)
}

// decodeFrom decodes records of id and drops those below sequence from
// (trimmed, or before the range asked for, in the first batch read).
func decodeFrom(id timebox.AggregateID, recs []string, from int64) ([]*timebox.Event, error) {
	evs, err := codec.DecodeEvents(id, recs)
	if err != nil {
		return nil, err
	}
	i := 0
	for i < len(evs) && evs[i].Sequence < from {
		i++
	}
	return evs[i:], nil
}
