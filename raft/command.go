package raft

import (
	"encoding/binary"
	"errors"
	"fmt"

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

// The flags byte of a snapshot command. A node of an older version reads
// only the trim bit; it would store an IfHead snapshot unconditionally.
const (
	snapTrim   byte = 1
	snapIfHead byte = 2
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
		ifHead   bool
		data     []byte
	}
)

func encodeAppend(req timebox.AppendRequest) []byte {
	buf := make([]byte, 0, 64+eventsSize(req.Events))
	buf = append(buf, commandVersion, opAppend)
	buf = codec.AppendString(buf, codec.EncodeID(req.ID))
	buf = binary.AppendUvarint(buf, uint64(req.ExpectedSequence))
	buf = binary.AppendUvarint(buf, uint64(len(req.Events)))
	for _, ev := range req.Events {
		buf = codec.AppendBytes(buf, codec.EncodeEvent(ev))
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
		buf = codec.AppendString(buf, *c.Status)
		buf = codec.AppendTime(buf, c.StatusTime)
	}
	buf = binary.AppendUvarint(buf, uint64(len(c.Labels)))
	for k, v := range c.Labels {
		buf = codec.AppendString(buf, k)
		buf = codec.AppendString(buf, v)
	}
	return buf
}

func encodeSnapshot(req timebox.SnapshotRequest) []byte {
	buf := make([]byte, 0, 32+len(req.Data))
	buf = append(buf, commandVersion, opSnapshot)
	buf = codec.AppendString(buf, codec.EncodeID(req.ID))
	buf = binary.AppendUvarint(buf, uint64(req.Sequence))
	var flags byte
	if req.Trim {
		flags |= snapTrim
	}
	if req.IfHead {
		flags |= snapIfHead
	}
	buf = append(buf, flags)
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
	r := codec.NewReader(b[2:])
	c := &appendCmd{key: string(r.Bytes()), expected: r.Seq()}
	n := r.Uvarint()
	if n > uint64(r.Len()) {
		return nil, errMalformedCommand
	}
	c.events = make([][]byte, 0, n)
	for range n {
		c.events = append(c.events, r.Bytes())
	}
	if r.Byte() == 1 {
		s := string(r.Bytes())
		c.index.Status = &s
		c.index.StatusTime = r.Time()
	}
	labels := r.Uvarint()
	if labels > uint64(r.Len()) {
		return nil, errMalformedCommand
	}
	if labels > 0 {
		c.index.Labels = make(map[string]string, labels)
	}
	for range labels {
		k := string(r.Bytes())
		c.index.Labels[k] = string(r.Bytes())
	}
	if r.Bad() || r.Len() != 0 {
		return nil, fmt.Errorf("%w: append", errMalformedCommand)
	}
	return c, nil
}

func decodeSnapshot(b []byte) (*snapshotCmd, error) {
	r := codec.NewReader(b[2:])
	c := &snapshotCmd{key: string(r.Bytes()), sequence: r.Seq()}
	flags := r.Byte()
	c.trim, c.ifHead = flags&snapTrim != 0, flags&snapIfHead != 0
	if r.Bad() || flags&^(snapTrim|snapIfHead) != 0 {
		return nil, fmt.Errorf("%w: snapshot", errMalformedCommand)
	}
	c.data = r.Rest()
	return c, nil
}
