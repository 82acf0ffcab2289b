package raft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/codec"
)

// A command is one Raft log entry: a version byte, an op byte, then the
// op's fields. Strings and byte strings are uvarint length-prefixed;
// integers are uvarints (sequences) or varints (times).
const commandVersion = 1

const (
	opAppend   byte = 1
	opSnapshot byte = 2
)

var errMalformedCommand = errors.New("raft: malformed command")

type (
	// appendCmd is an append as it travels through the log.
	appendCmd struct {
		key      string // codec.EncodeID of the aggregate
		expected int64
		events   [][]byte // codec.EncodeEvent of each event
		index    timebox.IndexChange
	}

	// snapshotCmd is a snapshot as it travels through the log.
	snapshotCmd struct {
		key      string
		sequence int64
		trim     bool
		data     []byte
	}
)

func encodeAppend(req timebox.AppendRequest) []byte {
	buf := make([]byte, 0, 64+eventsSize(req.Events))
	buf = append(buf, commandVersion, opAppend)
	buf = appendString(buf, codec.EncodeID(req.ID))
	buf = binary.AppendUvarint(buf, uint64(req.ExpectedSequence))
	buf = binary.AppendUvarint(buf, uint64(len(req.Events)))
	for _, ev := range req.Events {
		buf = appendBytes(buf, codec.EncodeEvent(ev))
	}
	return appendIndex(buf, req.Index)
}

func eventsSize(evs []*timebox.Event) int {
	n := 0
	for _, ev := range evs {
		n += 32 + len(ev.Type) + len(ev.Data)
	}
	return n
}

func appendIndex(buf []byte, c timebox.IndexChange) []byte {
	if c.Status == nil {
		buf = append(buf, 0)
	} else {
		buf = append(buf, 1)
		buf = appendString(buf, *c.Status)
		buf = appendTime(buf, c.StatusTime)
	}
	buf = binary.AppendUvarint(buf, uint64(len(c.Labels)))
	for k, v := range c.Labels {
		buf = appendString(buf, k)
		buf = appendString(buf, v)
	}
	return buf
}

func encodeSnapshot(req timebox.SnapshotRequest) []byte {
	buf := make([]byte, 0, 32+len(req.Data))
	buf = append(buf, commandVersion, opSnapshot)
	buf = appendString(buf, codec.EncodeID(req.ID))
	buf = binary.AppendUvarint(buf, uint64(req.Sequence))
	if req.Trim {
		buf = append(buf, 1)
	} else {
		buf = append(buf, 0)
	}
	return append(buf, req.Data...)
}

// commandOp returns the op of an encoded command.
func commandOp(b []byte) (byte, error) {
	if len(b) < 2 || b[0] != commandVersion {
		return 0, errMalformedCommand
	}
	return b[1], nil
}

func decodeAppend(b []byte) (*appendCmd, error) {
	r := cmdReader{b: b[2:]}
	c := &appendCmd{key: string(r.bytes()), expected: r.seq()}
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		return nil, errMalformedCommand
	}
	c.events = make([][]byte, 0, n)
	for range n {
		c.events = append(c.events, r.bytes())
	}
	if r.byte() == 1 {
		s := string(r.bytes())
		c.index.Status = &s
		c.index.StatusTime = r.time()
	}
	labels := r.uvarint()
	if labels > uint64(len(r.b)) {
		return nil, errMalformedCommand
	}
	if labels > 0 {
		c.index.Labels = make(map[string]string, labels)
	}
	for range labels {
		k := string(r.bytes())
		c.index.Labels[k] = string(r.bytes())
	}
	if r.bad || len(r.b) != 0 {
		return nil, fmt.Errorf("%w: append", errMalformedCommand)
	}
	return c, nil
}

func decodeSnapshot(b []byte) (*snapshotCmd, error) {
	r := cmdReader{b: b[2:]}
	c := &snapshotCmd{key: string(r.bytes()), sequence: r.seq()}
	c.trim = r.byte() == 1
	if r.bad {
		return nil, fmt.Errorf("%w: snapshot", errMalformedCommand)
	}
	c.data = r.b
	return c, nil
}

// appendTime encodes t as Unix seconds and nanoseconds, which, unlike
// UnixNano, covers every time.Time.
func appendTime(buf []byte, t time.Time) []byte {
	buf = binary.AppendVarint(buf, t.Unix())
	return binary.AppendUvarint(buf, uint64(t.Nanosecond()))
}

func appendString(buf []byte, s string) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(s)))
	return append(buf, s...)
}

func appendBytes(buf, b []byte) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(b)))
	return append(buf, b...)
}

// cmdReader reads fields in order; after the first error every read
// returns a zero value and bad is set.
type cmdReader struct {
	b   []byte
	bad bool
}

func (r *cmdReader) uvarint() uint64 {
	if r.bad {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.bad = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *cmdReader) varint() int64 {
	if r.bad {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.bad = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *cmdReader) time() time.Time {
	sec := r.varint()
	nsec := r.uvarint()
	if nsec >= 1e9 {
		r.bad = true
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

func (r *cmdReader) seq() int64 {
	v := r.uvarint()
	if v > 1<<63-1 {
		r.bad = true
		return 0
	}
	return int64(v)
}

func (r *cmdReader) byte() byte {
	if r.bad || len(r.b) == 0 {
		r.bad = true
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *cmdReader) bytes() []byte {
	n := r.uvarint()
	if r.bad || n > uint64(len(r.b)) {
		r.bad = true
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}
