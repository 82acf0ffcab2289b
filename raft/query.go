package raft

import (
	"bytes"
	"context"

	"go.etcd.io/bbolt"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/codec"
)

// Reads are served from this node's state file. They reflect every write
// this node acknowledged, but may trail writes acknowledged by others.

// LoadEvents returns id's stored events with sequence at least fromSeq.
func (p *Persistence) LoadEvents(
	_ context.Context, id timebox.AggregateID, fromSeq int64,
) ([]*timebox.Event, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	var res []*timebox.Event
	err := p.fsm.view(func(tx *bbolt.Tx) error {
		var err error
		res, err = loadEvents(tx, codec.EncodeID(id), fromSeq)
		return err
	})
	return res, err
}

// LoadSnapshot returns id's snapshot and the events from its sequence on.
func (p *Persistence) LoadSnapshot(
	_ context.Context, id timebox.AggregateID,
) (*timebox.SnapshotRecord, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	res := &timebox.SnapshotRecord{}
	key := codec.EncodeID(id)
	err := p.fsm.view(func(tx *bbolt.Tx) error {
		rec, ok := getAgg(tx, key)
		if !ok {
			return nil
		}
		if rec.hasSnap {
			res.Data = bytes.Clone(tx.Bucket(bucketSnaps).Get([]byte(key)))
			res.Sequence = rec.snapSeq
		}
		var err error
		res.Events, err = loadEvents(tx, key, res.Sequence)
		return err
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// GetAggregateStatus returns id's status, "" when it has none.
func (p *Persistence) GetAggregateStatus(
	_ context.Context, id timebox.AggregateID,
) (string, error) {
	if err := p.checkOpen(); err != nil {
		return "", err
	}
	var res string
	err := p.fsm.view(func(tx *bbolt.Tx) error {
		res, _, _ = decodeStatus(tx.Bucket(bucketStatus).Get([]byte(codec.EncodeID(id))))
		return nil
	})
	return res, err
}

// ListAggregatesByStatus returns the aggregates in status with the time
// each entered it.
func (p *Persistence) ListAggregatesByStatus(
	_ context.Context, status string,
) ([]timebox.StatusEntry, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	var res []timebox.StatusEntry
	prefix := codec.AppendString(nil, status)
	err := p.fsm.view(func(tx *bbolt.Tx) error {
		return scan(tx.Bucket(bucketByStatus), prefix, func(k, v []byte) error {
			id, err := codec.DecodeID(string(k[len(prefix):]))
			if err != nil {
				return err
			}
			r := codec.NewReader(v)
			res = append(res, timebox.StatusEntry{ID: id, Timestamp: r.Time()})
			return nil
		})
	})
	return res, err
}

// ListLabelValues returns the distinct values label has.
func (p *Persistence) ListLabelValues(_ context.Context, label string) ([]string, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	var res []string
	prefix := codec.AppendString(nil, label)
	err := p.fsm.view(func(tx *bbolt.Tx) error {
		return scan(tx.Bucket(bucketByLabel), prefix, func(k, _ []byte) error {
			r := codec.NewReader(k[len(prefix):])
			v := string(r.Bytes())
			if len(res) == 0 || res[len(res)-1] != v {
				res = append(res, v)
			}
			return nil
		})
	})
	return res, err
}

// ListAggregatesByLabel returns the aggregates whose label has value.
func (p *Persistence) ListAggregatesByLabel(
	_ context.Context, label, value string,
) ([]timebox.AggregateID, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	var res []timebox.AggregateID
	prefix := codec.AppendString(codec.AppendString(nil, label), value)
	err := p.fsm.view(func(tx *bbolt.Tx) error {
		return scan(tx.Bucket(bucketByLabel), prefix, func(k, _ []byte) error {
			id, err := codec.DecodeID(string(k[len(prefix):]))
			if err == nil {
				res = append(res, id)
			}
			return err
		})
	})
	return res, err
}

// ListAggregates returns the live aggregates whose ID starts with prefix.
func (p *Persistence) ListAggregates(
	_ context.Context, prefix timebox.AggregateID,
) ([]timebox.AggregateID, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	var res []timebox.AggregateID
	add := func(k, _ []byte) error {
		id, err := codec.DecodeID(string(k))
		if err == nil {
			res = append(res, id)
		}
		return err
	}
	err := p.fsm.view(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketAggs)
		if len(prefix) == 0 {
			return b.ForEach(add)
		}
		exact := []byte(codec.EncodeID(prefix))
		if v := b.Get(exact); v != nil {
			if err := add(exact, v); err != nil {
				return err
			}
		}
		return scan(b, []byte(codec.EncodePrefix(prefix)), add)
	})
	return res, err
}

// scan calls fn for every key of b that starts with prefix.
func scan(b *bbolt.Bucket, prefix []byte, fn func(k, v []byte) error) error {
	c := b.Cursor()
	for k, v := c.Seek(prefix); bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
}
