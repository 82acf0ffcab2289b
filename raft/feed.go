package raft

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"go.etcd.io/bbolt"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/codec"
)

// The feed is part of the replicated state:
//
//	feed  index(8 BE) -> the opAppend command applied at that log index
//
// Applying a non-empty append that passes its check stores the command
// under its log index in the same bolt transaction as its events, so an
// event is in the feed exactly when it is in the log of its aggregate (or
// was, before a trim or an archive: neither touches the feed). An event's
// Position is {log index, its place in the append}.
var bucketFeed = []byte("feed")

var _ timebox.Feeder = (*Persistence)(nil)

// putFeed records the append applied at log index idx.
func putFeed(tx *bbolt.Tx, idx uint64, cmd []byte) error {
	b := tx.Bucket(bucketFeed)
	b.FillPercent = 1 // keys only ever grow
	return b.Put(seqKey(idx), cmd)
}

// ReadFeed returns up to req.Limit events after req.After from this
// node's applied state, in Position order, each with its Position set.
// Every node, leader or follower, serves it: the state machine applies
// entries in log order and a snapshot install replaces the state with a
// later one of the same log, so a node's feed only ever grows at its end
// and a read never skips an event. A node may trail the leader; its feed
// catches up as it applies. With req.Wait positive and nothing to return,
// it waits until this node applies more, req.Wait passes (nil, nil), ctx
// ends (ctx's error) or the node closes (timebox.ErrClosed).
func (p *Persistence) ReadFeed(
	ctx context.Context, req timebox.FeedRequest,
) ([]*timebox.Event, error) {
	var timeout <-chan time.Time
	for {
		if err := p.checkOpen(); err != nil {
			return nil, err
		}
		changed := p.fsm.changed()
		var res []*timebox.Event
		err := p.fsm.view(func(tx *bbolt.Tx) error {
			var err error
			res, err = readFeed(tx, req.After, req.Limit)
			return err
		})
		if err != nil || len(res) > 0 || req.Wait <= 0 {
			return res, err
		}
		if timeout == nil {
			t := time.NewTimer(req.Wait)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-changed:
		case <-timeout:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-p.done:
			return nil, timebox.ErrClosed
		}
	}
}

// readFeed decodes up to limit events of the feed after after.
func readFeed(tx *bbolt.Tx, after timebox.Position, limit int) ([]*timebox.Event, error) {
	var res []*timebox.Event
	c := tx.Bucket(bucketFeed).Cursor()
	for k, v := c.Seek(seqKey(after.Commit)); k != nil && len(res) < limit; k, v = c.Next() {
		idx := binary.BigEndian.Uint64(k)
		var from uint64
		if idx == after.Commit {
			if after.Offset == math.MaxUint64 {
				continue
			}
			from = after.Offset + 1
		}
		evs, err := decodeFeedEntry(idx, v, from, limit-len(res))
		if err != nil {
			return nil, err
		}
		res = append(res, evs...)
	}
	return res, nil
}

// decodeFeedEntry decodes up to limit events of the append stored at log
// index idx, from offset from on. The events do not refer to b.
func decodeFeedEntry(idx uint64, b []byte, from uint64, limit int) ([]*timebox.Event, error) {
	c, err := decodeAppend(b)
	if err != nil {
		return nil, fmt.Errorf("raft: feed entry %d: %w", idx, err)
	}
	if from >= uint64(len(c.events)) {
		return nil, nil
	}
	id, err := codec.DecodeID(c.key)
	if err != nil {
		return nil, fmt.Errorf("raft: feed entry %d: %w", idx, err)
	}
	recs := c.events[from:]
	recs = recs[:min(len(recs), limit)]
	res, err := codec.DecodeEvents(id, recs)
	if err != nil {
		return nil, fmt.Errorf("raft: feed entry %d: %w", idx, err)
	}
	for i, ev := range res {
		ev.Position = timebox.Position{Commit: idx, Offset: from + uint64(i)}
	}
	return res, nil
}
