package raft

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/codec"
)

// The state machine's bolt file. An aggregate's key is codec.EncodeID of
// its ID, which never holds NUL; codec.AppendString(s) is s prefixed by its uvarint
// length, so a byte prefix of lp-encoded fields matches exactly.
//
//	meta        "applied"              -> last applied log index (8 bytes BE)
//	aggregates  key                    -> head, snapshot sequence, has snapshot
//	events      key NUL seq(8 bytes BE) -> codec.EncodeEvent
//	snapshots   key                    -> snapshot JSON
//	status      key                    -> codec.AppendString(status) time
//	by_status   codec.AppendString(status) key         -> time
//	labels      key NUL label          -> value
//	by_label    codec.AppendString(label) codec.AppendString(value) key -> empty
var (
	bucketMeta     = []byte("meta")
	bucketAggs     = []byte("aggregates")
	bucketEvents   = []byte("events")
	bucketSnaps    = []byte("snapshots")
	bucketStatus   = []byte("status")
	bucketByStatus = []byte("by_status")
	bucketLabels   = []byte("labels")
	bucketByLabel  = []byte("by_label")

	// coreBuckets are in every state file; a file without one of them is
	// not a state file.
	coreBuckets = [][]byte{
		bucketMeta, bucketAggs, bucketEvents, bucketSnaps,
		bucketStatus, bucketByStatus, bucketLabels, bucketByLabel,
	}

	// allBuckets adds the archive's (archive_cmd.go), the feed's
	// (feed.go) and the consumers' (consumer_cmd.go), created when
	// missing, as in a snapshot taken before they existed.
	allBuckets = append(append([][]byte(nil), coreBuckets...),
		bucketArchive, bucketLeases, bucketFeed, bucketConsumers, bucketParts)

	keyApplied = []byte("applied")
)

// aggRecord is an aggregate's row: its head (next sequence) and snapshot.
type aggRecord struct {
	head    int64
	snapSeq int64
	hasSnap bool
}

func createBuckets(tx *bbolt.Tx) error {
	for _, name := range allBuckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("raft: create bucket %s: %w", name, err)
		}
	}
	return nil
}

// checkBuckets reports a bolt file that is not a state machine file.
func checkBuckets(tx *bbolt.Tx) error {
	for _, name := range coreBuckets {
		if tx.Bucket(name) == nil {
			return fmt.Errorf("%w: bucket %s missing", errBadStateFile, name)
		}
	}
	return nil
}

func getApplied(tx *bbolt.Tx) uint64 {
	v := tx.Bucket(bucketMeta).Get(keyApplied)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func putApplied(tx *bbolt.Tx, idx uint64) error {
	return tx.Bucket(bucketMeta).Put(keyApplied, binary.BigEndian.AppendUint64(nil, idx))
}

func getAgg(tx *bbolt.Tx, key string) (aggRecord, bool) {
	v := tx.Bucket(bucketAggs).Get([]byte(key))
	if v == nil {
		return aggRecord{}, false
	}
	r := codec.NewReader(v)
	rec := aggRecord{head: r.Seq(), snapSeq: r.Seq(), hasSnap: r.Byte() == 1}
	return rec, !r.Bad()
}

func putAgg(tx *bbolt.Tx, key string, rec aggRecord) error {
	buf := binary.AppendUvarint(nil, uint64(rec.head))
	buf = binary.AppendUvarint(buf, uint64(rec.snapSeq))
	if rec.hasSnap {
		buf = append(buf, 1)
	} else {
		buf = append(buf, 0)
	}
	return tx.Bucket(bucketAggs).Put([]byte(key), buf)
}

func eventPrefix(key string) []byte {
	return append([]byte(key), 0)
}

func eventKey(key string, seq int64) []byte {
	return binary.BigEndian.AppendUint64(eventPrefix(key), uint64(seq))
}

// loadEvents decodes the events of key with sequence at least from.
func loadEvents(tx *bbolt.Tx, key string, from int64) ([]*timebox.Event, error) {
	id, err := codec.DecodeID(key)
	if err != nil {
		return nil, err
	}
	prefix := eventPrefix(key)
	c := tx.Bucket(bucketEvents).Cursor()
	var recs [][]byte // valid until tx ends; DecodeEvents copies them
	for k, v := c.Seek(eventKey(key, from)); bytes.HasPrefix(k, prefix); k, v = c.Next() {
		recs = append(recs, v)
	}
	if len(recs) == 0 {
		return nil, nil
	}
	res, err := codec.DecodeEvents(id, recs)
	if err != nil {
		return nil, fmt.Errorf("raft: %w", err)
	}
	return res, nil
}

// trimEvents deletes the events of key below seq.
func trimEvents(tx *bbolt.Tx, key string, seq int64) error {
	prefix := eventPrefix(key)
	end := eventKey(key, seq)
	c := tx.Bucket(bucketEvents).Cursor()
	for k, _ := c.Seek(prefix); bytes.HasPrefix(k, prefix) && bytes.Compare(k, end) < 0; k, _ = c.Seek(prefix) {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

func encodeStatus(status string, at time.Time) []byte {
	return codec.AppendTime(codec.AppendString(nil, status), at)
}

func decodeStatus(v []byte) (string, time.Time, bool) {
	r := codec.NewReader(v)
	s := string(r.Bytes())
	t := r.Time()
	return s, t, !r.Bad()
}

// setStatus moves key into status entered at, or out of every status when
// status is "". A key already in status stays in it, entered at the time
// it had: nothing is written.
func setStatus(tx *bbolt.Tx, key, status string, at time.Time) error {
	st, by := tx.Bucket(bucketStatus), tx.Bucket(bucketByStatus)
	old, oldAt, ok := decodeStatus(st.Get([]byte(key)))
	if ok && status != "" && old == status {
		return nil
	}
	if !ok {
		old = ""
	} else {
		if err := by.Delete(append(codec.AppendString(nil, old), key...)); err != nil {
			return err
		}
	}
	if err := moveStatusTime(tx, key, old, oldAt, status, at); err != nil {
		return err
	}
	if status == "" {
		return st.Delete([]byte(key))
	}
	if err := st.Put([]byte(key), encodeStatus(status, at)); err != nil {
		return err
	}
	return by.Put(append(codec.AppendString(nil, status), key...), codec.AppendTime(nil, at))
}

func labelKey(key, label string) []byte {
	return append(eventPrefix(key), label...)
}

// setLabel sets key's label to value, or removes it when value is "".
func setLabel(tx *bbolt.Tx, key, label, value string) error {
	lb, by := tx.Bucket(bucketLabels), tx.Bucket(bucketByLabel)
	lk := labelKey(key, label)
	if old := lb.Get(lk); old != nil {
		if err := by.Delete(append(codec.AppendString(codec.AppendString(nil, label), string(old)), key...)); err != nil {
			return err
		}
	}
	if value == "" {
		return lb.Delete(lk)
	}
	if err := lb.Put(lk, []byte(value)); err != nil {
		return err
	}
	return by.Put(append(codec.AppendString(codec.AppendString(nil, label), value), key...), []byte{})
}

// ErrIndexTooLong means an append's status, or a label with its value,
// would make a state file key longer than bolt allows (bbolt.MaxKeySize,
// 32 KiB, with the aggregate's encoded ID). Nothing was written.
var ErrIndexTooLong = errors.New("raft: status or label too long for a state file key")

// checkKeys returns an error when writing key's events, or the index
// change ix, would need a bolt key longer than bbolt.MaxKeySize: bolt
// would refuse it while applying the entry, on every node. Append and
// SaveSnapshot check before proposing, and the state machine again before
// writing (rejecting the command, the same on every node), so no such
// entry can stop the log being applied.
func checkKeys(key string, ix timebox.IndexChange) error {
	if n := len(eventKey(key, 0)); n > bbolt.MaxKeySize {
		return fmt.Errorf("%w: encoded ID of %d bytes; the raft backend takes at most %d",
			timebox.ErrInvalidAggregateID, len(key), bbolt.MaxKeySize-(n-len(key)))
	}
	if ix.Status != nil && len(statusTimeKey(*ix.Status, ix.StatusTime, key)) > bbolt.MaxKeySize {
		return fmt.Errorf("%w: status of %d bytes", ErrIndexTooLong, len(*ix.Status))
	}
	for label, value := range ix.Labels {
		by := len(codec.AppendString(codec.AppendString(nil, label), value)) + len(key)
		if by > bbolt.MaxKeySize || len(labelKey(key, label)) > bbolt.MaxKeySize {
			return fmt.Errorf("%w: label of %d bytes with a value of %d",
				ErrIndexTooLong, len(label), len(value))
		}
	}
	return nil
}
