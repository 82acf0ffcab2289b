package raft

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"slices"
	"time"

	"go.etcd.io/bbolt"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/codec"
)

var _ timebox.PagedQueries = (*Persistence)(nil)

// bucketStatusTime orders each status's aggregates by entry time, for
// paging (by_status is ordered by key):
//
//	by_status_time  codec.AppendString(status) sortableTime key -> empty
//
// setStatus keeps it with by_status. A state file written before it
// existed gets it, filled from by_status, in the first transaction that
// sets a status; until then a status page is read from by_status, sorted.
var bucketStatusTime = []byte("by_status_time")

// sortableTime is t as 12 bytes whose byte order is time order: seconds
// with the sign bit flipped, then nanoseconds, big-endian.
func sortableTime(t time.Time) []byte {
	b := binary.BigEndian.AppendUint64(nil, uint64(t.Unix())^1<<63)
	return binary.BigEndian.AppendUint32(b, uint32(t.Nanosecond()))
}

func statusTimeKey(status string, at time.Time, key string) []byte {
	return append(append(codec.AppendString(nil, status), sortableTime(at)...), key...)
}

// moveStatusTime moves key from old (entered at oldAt; "" for none) to
// status (entered at; "" for none) in bucketStatusTime, creating and
// filling the bucket first when the state file has none.
func moveStatusTime(tx *bbolt.Tx, key, old string, oldAt time.Time, status string, at time.Time) error {
	b := tx.Bucket(bucketStatusTime)
	if b == nil {
		var err error
		if b, err = fillStatusTime(tx); err != nil {
			return err
		}
	}
	if old != "" {
		if err := b.Delete(statusTimeKey(old, oldAt, key)); err != nil {
			return err
		}
	}
	if status == "" {
		return nil
	}
	return b.Put(statusTimeKey(status, at, key), []byte{})
}

// fillStatusTime creates bucketStatusTime from the status bucket.
func fillStatusTime(tx *bbolt.Tx) (*bbolt.Bucket, error) {
	b, err := tx.CreateBucket(bucketStatusTime)
	if err != nil {
		return nil, err
	}
	err = tx.Bucket(bucketStatus).ForEach(func(k, v []byte) error {
		status, at, ok := decodeStatus(v)
		if !ok || status == "" {
			return nil
		}
		return b.Put(statusTimeKey(status, at, string(k)), []byte{})
	})
	return b, err
}

// ListAggregatesByStatusAfter pages status by entry time, then key: a
// bbolt cursor Seek to the entry after the cursor, then limit steps.
func (p *Persistence) ListAggregatesByStatusAfter(
	_ context.Context, status string, after *timebox.StatusEntry, limit int,
) ([]timebox.StatusEntry, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	prefix := codec.AppendString(nil, status)
	var res []timebox.StatusEntry
	err := p.fsm.view(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketStatusTime)
		if b == nil {
			var err error
			res, err = statusPageByKey(tx, prefix, after, limit)
			return err
		}
		var from []byte
		if after != nil {
			from = statusTimeKey(status, after.Timestamp, codec.EncodeID(after.ID))
		}
		return seekPage(b, prefix, from, limit, func(k []byte) error {
			rest := k[len(prefix):]
			if len(rest) < 12 {
				return errBadStatusTime
			}
			id, err := codec.DecodeID(string(rest[12:]))
			if err != nil {
				return err
			}
			sec := int64(binary.BigEndian.Uint64(rest) ^ 1<<63)
			nsec := int64(binary.BigEndian.Uint32(rest[8:]))
			res = append(res, timebox.StatusEntry{ID: id, Timestamp: time.Unix(sec, nsec).UTC()})
			return nil
		})
	})
	return res, err
}

var errBadStatusTime = errors.New("raft: malformed by_status_time key")

// statusPageByKey is a status page from by_status, for a state file that
// has no bucketStatusTime yet: it reads the whole status and sorts it.
func statusPageByKey(
	tx *bbolt.Tx, prefix []byte, after *timebox.StatusEntry, limit int,
) ([]timebox.StatusEntry, error) {
	type entry struct {
		key string
		e   timebox.StatusEntry
	}
	var all []entry
	err := scan(tx.Bucket(bucketByStatus), prefix, func(k, v []byte) error {
		key := string(k[len(prefix):])
		id, err := codec.DecodeID(key)
		if err != nil {
			return err
		}
		at := codec.NewReader(v).Time()
		all = append(all, entry{key, timebox.StatusEntry{ID: id, Timestamp: at}})
		return nil
	})
	if err != nil {
		return nil, err
	}
	order := func(a, b entry) int {
		return cmp.Or(a.e.Timestamp.Compare(b.e.Timestamp), cmp.Compare(a.key, b.key))
	}
	slices.SortFunc(all, order)
	if after != nil {
		last := entry{codec.EncodeID(after.ID), *after}
		all = slices.DeleteFunc(all, func(e entry) bool { return order(e, last) <= 0 })
	}
	res := make([]timebox.StatusEntry, 0, min(limit, len(all)))
	for _, e := range all[:min(limit, len(all))] {
		res = append(res, e.e)
	}
	return res, nil
}

// ListAggregatesByLabelAfter pages the aggregates whose label has value,
// by key: a Seek in by_label, then limit steps.
func (p *Persistence) ListAggregatesByLabelAfter(
	_ context.Context, label, value string, after timebox.AggregateID, limit int,
) ([]timebox.AggregateID, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	prefix := codec.AppendString(codec.AppendString(nil, label), value)
	var res []timebox.AggregateID
	err := p.fsm.view(func(tx *bbolt.Tx) error {
		var from []byte
		if after != nil {
			from = append(bytes.Clone(prefix), codec.EncodeID(after)...)
		}
		return seekPage(tx.Bucket(bucketByLabel), prefix, from, limit, func(k []byte) error {
			id, err := codec.DecodeID(string(k[len(prefix):]))
			res = append(res, id)
			return err
		})
	})
	return res, err
}

// ListAggregatesAfter pages the live aggregates under prefix, by key: the
// prefix itself (which sorts first), then a Seek in the aggregates bucket
// to the range under it.
func (p *Persistence) ListAggregatesAfter(
	_ context.Context, prefix, after timebox.AggregateID, limit int,
) ([]timebox.AggregateID, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	var from []byte
	if after != nil {
		from = []byte(codec.EncodeID(after))
	}
	var res []timebox.AggregateID
	add := func(k []byte) error {
		id, err := codec.DecodeID(string(k))
		res = append(res, id)
		return err
	}
	err := p.fsm.view(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketAggs)
		if len(prefix) == 0 {
			return seekPage(b, nil, from, limit, add)
		}
		exact := []byte(codec.EncodeID(prefix))
		under := []byte(codec.EncodePrefix(prefix))
		if bytes.Compare(from, exact) < 0 && b.Get(exact) != nil {
			if err := add(exact); err != nil {
				return err
			}
			limit--
		}
		if bytes.Compare(from, under) < 0 {
			from = nil
		}
		return seekPage(b, under, from, limit, add)
	})
	return res, err
}

// seekPage calls fn for up to limit keys of b that start with prefix and
// sort after from (nil: from the first).
func seekPage(b *bbolt.Bucket, prefix, from []byte, limit int, fn func(k []byte) error) error {
	if limit <= 0 {
		return nil
	}
	c := b.Cursor()
	k, _ := c.Seek(prefix)
	if from != nil {
		if k, _ = c.Seek(from); bytes.Equal(k, from) {
			k, _ = c.Next()
		}
	}
	for n := 0; n < limit && k != nil && bytes.HasPrefix(k, prefix); n++ {
		if err := fn(k); err != nil {
			return err
		}
		k, _ = c.Next()
	}
	return nil
}
