package raft

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/codec"
)

// Archiving lives in the replicated state, so every node holds the same
// archive records and leases, and any node can consume them:
//
//	archive        seq(8 BE) -> lp(key) lp(snapshot) snapshot seq n lp(event)×n
//	archive_lease  seq(8 BE) -> lp(consumer token) time(expiry)
//	meta "archive_next"      -> next archive seq (8 BE)
//
// Four commands change them, each applied atomically in one batch:
//
//	opArchive  lp(key): move the aggregate's snapshot, events, status and
//	  labels into a new record (nothing when the aggregate is unknown);
//	opLease    lp(token) time(now) duration: lease the first record with
//	  no lease live at now (proposer's clock) to token until now+duration;
//	opAck      seq: delete the record and its lease;
//	opRelease  seq lp(token): drop the lease on seq if token holds it.
const (
	opArchive byte = 3
	opLease   byte = 4
	opAck     byte = 5
	opRelease byte = 6
)

var (
	bucketArchive = []byte("archive")
	bucketLeases  = []byte("archive_lease")
	keyArchiveSeq = []byte("archive_next")
)

type leaseCmd struct {
	token string
	now   time.Time
	dur   time.Duration
}

func encodeArchive(id timebox.AggregateID) []byte {
	return codec.AppendString([]byte{commandVersion, opArchive}, codec.EncodeID(id))
}

func encodeLease(token string, now time.Time, dur time.Duration) []byte {
	buf := codec.AppendString([]byte{commandVersion, opLease}, token)
	buf = codec.AppendTime(buf, now)
	return binary.AppendUvarint(buf, uint64(dur))
}

func encodeAck(seq uint64) []byte {
	return binary.AppendUvarint([]byte{commandVersion, opAck}, seq)
}

func encodeRelease(seq uint64, token string) []byte {
	buf := binary.AppendUvarint([]byte{commandVersion, opRelease}, seq)
	return codec.AppendString(buf, token)
}

// applyArchiveOp applies one of the archive commands; a malformed one is a
// response, not an error.
func applyArchiveOp(tx *bbolt.Tx, op byte, data []byte) (any, error) {
	r := codec.NewReader(data[2:])
	switch op {
	case opArchive:
		key := string(r.Bytes())
		if r.Bad() || r.Len() != 0 {
			return fmt.Errorf("%w: archive", errMalformedCommand), nil
		}
		return nil, archiveAggregate(tx, key)
	case opLease:
		c := leaseCmd{token: string(r.Bytes()), now: r.Time(), dur: time.Duration(r.Uvarint())}
		if r.Bad() || r.Len() != 0 {
			return fmt.Errorf("%w: lease", errMalformedCommand), nil
		}
		return nil, leaseRecord(tx, c)
	case opAck:
		seq := r.Uvarint()
		if r.Bad() || r.Len() != 0 {
			return fmt.Errorf("%w: ack", errMalformedCommand), nil
		}
		k := seqKey(seq)
		if err := tx.Bucket(bucketArchive).Delete(k); err != nil {
			return nil, err
		}
		return nil, tx.Bucket(bucketLeases).Delete(k)
	default: // opRelease
		seq, token := r.Uvarint(), string(r.Bytes())
		if r.Bad() || r.Len() != 0 {
			return fmt.Errorf("%w: release", errMalformedCommand), nil
		}
		k := seqKey(seq)
		if holder, _, ok := decodeLease(tx.Bucket(bucketLeases).Get(k)); ok && holder == token {
			return nil, tx.Bucket(bucketLeases).Delete(k)
		}
		return nil, nil
	}
}

func seqKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(nil, seq)
}

// archiveAggregate moves key's snapshot, events, status and labels into a
// new archive record; an unknown aggregate is left alone.
func archiveAggregate(tx *bbolt.Tx, key string) error {
	rec, ok := getAgg(tx, key)
	if !ok {
		return nil
	}
	var snap []byte
	if rec.hasSnap {
		snap = tx.Bucket(bucketSnaps).Get([]byte(key))
	}
	buf := codec.AppendString(nil, key)
	buf = codec.AppendBytes(buf, snap)
	buf = binary.AppendUvarint(buf, uint64(rec.snapSeq))
	prefix := eventPrefix(key)
	var evs [][]byte
	c := tx.Bucket(bucketEvents).Cursor()
	for k, v := c.Seek(prefix); bytes.HasPrefix(k, prefix); k, v = c.Next() {
		evs = append(evs, v)
	}
	buf = binary.AppendUvarint(buf, uint64(len(evs)))
	for _, ev := range evs {
		buf = codec.AppendBytes(buf, ev)
	}
	// buf holds copies now; the live records can go.
	if err := trimEvents(tx, key, rec.head+1); err != nil {
		return err
	}
	if err := removeIndex(tx, key); err != nil {
		return err
	}
	if err := tx.Bucket(bucketSnaps).Delete([]byte(key)); err != nil {
		return err
	}
	if err := tx.Bucket(bucketAggs).Delete([]byte(key)); err != nil {
		return err
	}
	meta := tx.Bucket(bucketMeta)
	var seq uint64
	if v := meta.Get(keyArchiveSeq); len(v) == 8 {
		seq = binary.BigEndian.Uint64(v)
	}
	if err := meta.Put(keyArchiveSeq, seqKey(seq+1)); err != nil {
		return err
	}
	return tx.Bucket(bucketArchive).Put(seqKey(seq), buf)
}

// removeIndex takes key out of its status and every label.
func removeIndex(tx *bbolt.Tx, key string) error {
	if err := setStatus(tx, key, "", time.Time{}); err != nil {
		return err
	}
	prefix := eventPrefix(key)
	var labels []string
	c := tx.Bucket(bucketLabels).Cursor()
	for k, _ := c.Seek(prefix); bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		labels = append(labels, string(k[len(prefix):]))
	}
	for _, l := range labels {
		if err := setLabel(tx, key, l, ""); err != nil {
			return err
		}
	}
	return nil
}

func encodeLeaseValue(token string, expiry time.Time) []byte {
	return codec.AppendTime(codec.AppendString(nil, token), expiry)
}

func decodeLease(v []byte) (string, time.Time, bool) {
	if v == nil {
		return "", time.Time{}, false
	}
	r := codec.NewReader(v)
	token := string(r.Bytes())
	expiry := r.Time()
	return token, expiry, !r.Bad()
}

// leaseRecord leases the first record free at c.now to c.token.
func leaseRecord(tx *bbolt.Tx, c leaseCmd) error {
	seq, ok, _ := freeRecord(tx, c.now)
	if !ok {
		return nil
	}
	return tx.Bucket(bucketLeases).Put(seqKey(seq), encodeLeaseValue(c.token, c.now.Add(c.dur)))
}

// freeRecord returns the first archive record with no lease live at now;
// when there is none, next is the earliest expiry of a live lease (zero
// when no record is leased).
func freeRecord(tx *bbolt.Tx, now time.Time) (seq uint64, ok bool, next time.Time) {
	leases := tx.Bucket(bucketLeases)
	c := tx.Bucket(bucketArchive).Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		_, expiry, held := decodeLease(leases.Get(k))
		if !held || !expiry.After(now) {
			return binary.BigEndian.Uint64(k), true, time.Time{}
		}
		if next.IsZero() || expiry.Before(next) {
			next = expiry
		}
	}
	return 0, false, next
}

// leasedBy returns the record token holds a lease on, if any.
func leasedBy(tx *bbolt.Tx, token string) (uint64, []byte, bool) {
	c := tx.Bucket(bucketLeases).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if holder, _, ok := decodeLease(v); ok && holder == token {
			rec := tx.Bucket(bucketArchive).Get(k)
			if rec == nil {
				return 0, nil, false
			}
			return binary.BigEndian.Uint64(k), bytes.Clone(rec), true
		}
	}
	return 0, nil, false
}

// decodeArchiveRecord decodes a stored archive record.
func decodeArchiveRecord(seq uint64, b []byte) (*timebox.ArchiveRecord, error) {
	r := codec.NewReader(b)
	key := string(r.Bytes())
	snap := r.Bytes()
	snapSeq := r.Seq()
	n := r.Uvarint()
	if r.Bad() || n > uint64(r.Len()) {
		return nil, fmt.Errorf("raft: archive record %d: %w", seq, timebox.ErrArchiveRecordMalformed)
	}
	id, err := codec.DecodeID(key)
	if err != nil {
		return nil, fmt.Errorf("raft: archive record %d: %w: %w", seq, timebox.ErrArchiveRecordMalformed, err)
	}
	res := &timebox.ArchiveRecord{
		StreamID: fmt.Sprint(seq), AggregateID: id, SnapshotSequence: snapSeq,
	}
	if len(snap) > 0 {
		res.SnapshotData = bytes.Clone(snap)
	}
	recs := make([][]byte, n)
	for i := range recs {
		recs[i] = r.Bytes()
	}
	if res.Events, err = codec.DecodeEvents(id, recs); err != nil || r.Bad() {
		return nil, fmt.Errorf("raft: archive record %d: %w: %v", seq, timebox.ErrArchiveRecordMalformed, err)
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("raft: archive record %d: %w", seq, timebox.ErrArchiveRecordMalformed)
	}
	return res, nil
}
