package redis

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/codec"
)

// archiveGroup is the consumer group every store reads its archive
// stream with.
const archiveGroup = "timebox"

// blockSlice bounds one blocking XREADGROUP, so ConsumeArchive notices a
// cancelled context within this time (go-redis honours only deadlines).
const blockSlice = 100 * time.Millisecond

// Archive runs archive.lua: in one atomic step it adds the aggregate's
// snapshot and events to the archive stream as one entry and deletes its
// live keys and index entries. An unknown aggregate is left alone. The
// script is sent at most once; a lost reply gives an error matching
// timebox.ErrUnknownOutcome.
func (p *Persistence) Archive(ctx context.Context, id timebox.AggregateID) error {
	if err := p.checkOpen(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	k := p.keys.aggregate(id)
	_, err := p.run(ctx, archiveScript, true,
		[]string{
			k.meta, k.events, p.keys.aggs, p.keys.archive,
			p.keys.status, p.keys.label, p.keys.values, p.keys.feed,
		},
		k.eid,
	)
	if errors.Is(err, redis.Nil) {
		return nil
	}
	return p.writeError("archive", err)
}

// ConsumeArchive hands one archive record to handler and, once the handler
// succeeds, acknowledges and deletes its stream entry (XACK, XDEL). It
// takes, in order: an entry this Persistence was given before and has not
// acknowledged (so a handler error means redelivery at once), an entry
// another consumer left pending for longer than Config.MinIdle
// (XAUTOCLAIM), or the next new entry, blocking until one arrives or ctx
// is done (ctx's error). A handler error is returned and keeps the entry
// pending. Once the handler has succeeded, the acknowledgement is sent
// even if ctx is done by then (context.WithoutCancel), so a handled
// record is not delivered again. An entry that cannot be decoded gives an
// error matching timebox.ErrArchiveRecordMalformed; it is acknowledged,
// so consumers move on, but left in the stream for inspection.
func (p *Persistence) ConsumeArchive(ctx context.Context, handler timebox.ArchiveHandler) error {
	if err := p.checkOpen(); err != nil {
		return err
	}
	if handler == nil {
		return timebox.ErrArchiveHandlerMissing
	}
	msg, err := p.nextArchive(ctx)
	if err != nil {
		return err
	}
	rec, err := decodeArchive(msg)
	if err != nil {
		ackErr := p.client.XAck(context.WithoutCancel(ctx), p.keys.archive, archiveGroup, msg.ID).Err()
		p.config.logger().WarnContext(ctx,
			"redis: malformed archive entry acknowledged and left in the stream",
			slog.String("stream", p.keys.archive), slog.String("entry", msg.ID),
			slog.Any("error", err), slog.Any("ack_error", ackErr))
		return err
	}
	if err := handler(ctx, rec); err != nil {
		return err
	}
	// The record is handled: acknowledge it even if ctx ended meanwhile,
	// or it would be delivered again.
	ctx = context.WithoutCancel(ctx)
	pipe := p.client.TxPipeline()
	pipe.XAck(ctx, p.keys.archive, archiveGroup, msg.ID)
	pipe.XDel(ctx, p.keys.archive, msg.ID)
	if _, err := pipe.Exec(ctx); err != nil {
		return p.readError("acknowledge archive record", err)
	}
	return nil
}

func (p *Persistence) nextArchive(ctx context.Context) (redis.XMessage, error) {
	if err := p.ensureGroup(ctx); err != nil {
		return redis.XMessage{}, err
	}
	p.consumed.Store(true)
	for {
		if err := ctx.Err(); err != nil {
			return redis.XMessage{}, err
		}
		if err := p.checkOpen(); err != nil {
			return redis.XMessage{}, err
		}
		msg, ok, err := p.tryArchive(ctx)
		if ok || err != nil {
			return msg, err
		}
	}
}

// tryArchive makes one attempt at each source in turn, blocking for at
// most blockSlice on new entries.
func (p *Persistence) tryArchive(ctx context.Context) (redis.XMessage, bool, error) {
	if msg, ok, err := p.readGroup(ctx, "0", -1); ok || err != nil {
		return msg, ok, err
	}
	if msg, ok, err := p.reclaim(ctx); ok || err != nil {
		return msg, ok, err
	}
	block := blockSlice
	if dl, ok := ctx.Deadline(); ok {
		block = min(block, time.Until(dl))
	}
	if block < time.Millisecond {
		<-ctx.Done()
		return redis.XMessage{}, false, ctx.Err()
	}
	return p.readGroup(ctx, ">", block)
}

// readGroup reads one entry: "0" reads this consumer's pending entries,
// ">" new ones. An entry deleted while pending is acknowledged and
// skipped.
func (p *Persistence) readGroup(
	ctx context.Context, from string, block time.Duration,
) (redis.XMessage, bool, error) {
	streams, err := p.client.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group:    archiveGroup,
		Consumer: p.consumer,
		Streams:  []string{p.keys.archive, from},
		Count:    1,
		Block:    block,
	}).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return redis.XMessage{}, false, nil
	case redis.HasErrorPrefix(err, "NOGROUP"):
		p.grouped.Store(false)
		return redis.XMessage{}, false, p.ensureGroup(ctx)
	case err != nil:
		return redis.XMessage{}, false, p.consumeError(ctx, err)
	}
	for _, s := range streams {
		for _, m := range s.Messages {
			if len(m.Values) == 0 {
				_ = p.client.XAck(ctx, p.keys.archive, archiveGroup, m.ID).Err()
				continue
			}
			return m, true, nil
		}
	}
	return redis.XMessage{}, false, nil
}

// reclaim takes over one entry pending with another consumer for longer
// than MinIdle. XAUTOCLAIM drops entries deleted meanwhile by itself. Each
// call goes on scanning the pending list where the last one stopped, so
// idle entries behind many live ones are reached too.
func (p *Persistence) reclaim(ctx context.Context) (redis.XMessage, bool, error) {
	start, _ := p.claimFrom.Load().(string)
	msgs, next, err := p.client.XAutoClaim(ctx, &redis.XAutoClaimArgs{
		Stream:   p.keys.archive,
		Group:    archiveGroup,
		Consumer: p.consumer,
		MinIdle:  p.config.MinIdle,
		Start:    cmp.Or(start, "0-0"),
		Count:    1,
	}).Result()
	if err != nil {
		return redis.XMessage{}, false, p.consumeError(ctx, err)
	}
	p.claimFrom.Store(next)
	for _, m := range msgs {
		if len(m.Values) > 0 {
			return m, true, nil
		}
	}
	return redis.XMessage{}, false, nil
}

func (p *Persistence) consumeError(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	return p.readError("consume archive", err)
}

// ensureGroup creates the consumer group (and the stream) once; a group
// that already exists is fine.
func (p *Persistence) ensureGroup(ctx context.Context) error {
	if p.grouped.Load() {
		return nil
	}
	err := p.client.XGroupCreateMkStream(ctx, p.keys.archive, archiveGroup, "0").Err()
	if err != nil && !redis.HasErrorPrefix(err, "BUSYGROUP") {
		return p.consumeError(ctx, err)
	}
	p.grouped.Store(true)
	return nil
}

// dropConsumer removes this Persistence's consumer from the group when it
// holds no pending entries, so closed stores do not pile up in XINFO.
func (p *Persistence) dropConsumer() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	pending, err := p.client.XPendingExt(ctx, &redis.XPendingExtArgs{
		Stream:   p.keys.archive,
		Group:    archiveGroup,
		Start:    "-",
		End:      "+",
		Count:    1,
		Consumer: p.consumer,
	}).Result()
	if err == nil && len(pending) == 0 {
		err = p.client.XGroupDelConsumer(ctx, p.keys.archive, archiveGroup, p.consumer).Err()
	}
	if err != nil {
		p.config.logger().Debug("redis: archive consumer not removed at close",
			slog.String("consumer", p.consumer), slog.Any("error", err))
	}
}

func decodeArchive(msg redis.XMessage) (*timebox.ArchiveRecord, error) {
	field := func(name string) (string, bool) {
		s, ok := msg.Values[name].(string)
		return s, ok
	}
	eid, ok1 := field("id")
	snap, ok2 := field("snapshot")
	seqStr, ok3 := field("sequence")
	framed, ok4 := field("events")
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return nil, malformed(msg.ID, "missing field")
	}
	id, err := codec.DecodeID(eid)
	if err != nil {
		return nil, malformed(msg.ID, err.Error())
	}
	seq, err := strconv.ParseInt(seqStr, 10, 64)
	if err != nil || seq < 0 {
		return nil, malformed(msg.ID, "bad snapshot sequence")
	}
	from := int64(0)
	if s, ok := field("from"); ok { // absent in entries of older versions
		if from, err = strconv.ParseInt(s, 10, 64); err != nil {
			return nil, malformed(msg.ID, "bad trim floor")
		}
	}
	strs, err := unframe(framed)
	if err != nil {
		return nil, malformed(msg.ID, err.Error())
	}
	evs, err := decodeFrom(id, strs, from)
	if err != nil {
		return nil, malformed(msg.ID, err.Error())
	}
	rec := &timebox.ArchiveRecord{
		StreamID:         msg.ID,
		AggregateID:      id,
		SnapshotSequence: seq,
		Events:           evs,
	}
	if snap != "" {
		rec.SnapshotData = json.RawMessage(snap)
	}
	return rec, nil
}

// unframe splits a batch into its "<length>:<bytes>" records, which
// point into s.
func unframe[S ~string | ~[]byte](s S) ([]S, error) {
	n := 0
	for rest := s; len(rest) > 0; n++ {
		var err error
		if _, rest, err = nextFrame(rest); err != nil {
			return nil, err
		}
	}
	res := make([]S, n)
	for i := range res {
		res[i], s, _ = nextFrame(s)
	}
	return res, nil
}

// nextFrame splits the first "<length>:<bytes>" record off s.
func nextFrame[S ~string | ~[]byte](s S) (rec, rest S, err error) {
	n, i := 0, 0
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		if n = n*10 + int(s[i]-'0'); n > len(s) {
			return rec, rest, errors.New("bad event frame length")
		}
	}
	if i == 0 || i == len(s) || s[i] != ':' {
		return rec, rest, errors.New("bad event frame")
	}
	if n > len(s)-i-1 {
		return rec, rest, errors.New("bad event frame length")
	}
	return s[i+1 : i+1+n], s[i+1+n:], nil
}

func malformed(entry, why string) error {
	return fmt.Errorf("redis: archive entry %s: %w: %s", entry, timebox.ErrArchiveRecordMalformed, why)
}
