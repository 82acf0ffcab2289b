package codec

import (
	"encoding/binary"
	"errors"

	"github.com/kode4food/timebox"
)

// ErrMalformedEvent is returned by DecodeEvent for bytes EncodeEvent cannot
// have produced.
var ErrMalformedEvent = errors.New("malformed encoded event")

// The event record versions: 1 (sequence, timestamp, type, data) is still
// decoded; 2 adds the event ID and metadata and is what EncodeEvent writes.
const (
	eventVersion1 = 1
	eventVersion  = 2
)

// EncodeEvent encodes ev's sequence, timestamp, type, ID, metadata and data
// (but not its aggregate ID, which the storage location implies) as a
// compact binary record: a version byte, the sequence, the timestamp
// (AppendTime), the length-prefixed type and ID, the metadata
// (AppendMetadata), then Data as the rest.
func EncodeEvent(ev *timebox.Event) []byte {
	n := 1 + 5*binary.MaxVarintLen64 + len(ev.Type) + len(ev.ID) + len(ev.Data)
	for k, v := range ev.Metadata {
		n += 2*binary.MaxVarintLen64 + len(k) + len(v)
	}
	return AppendEvent(make([]byte, 0, n), ev)
}

// AppendEvent appends the encoding of ev to buf.
func AppendEvent(buf []byte, ev *timebox.Event) []byte {
	buf = append(buf, eventVersion)
	buf = binary.AppendUvarint(buf, uint64(ev.Sequence))
	buf = AppendTime(buf, ev.Timestamp)
	buf = AppendString(buf, string(ev.Type))
	buf = AppendString(buf, ev.ID)
	buf = AppendMetadata(buf, ev.Metadata)
	return append(buf, ev.Data...)
}

// DecodeEvent decodes a record made by EncodeEvent, of either version, into
// an event of id. The event's Data refers to b, which the caller must no
// longer change.
func DecodeEvent(b []byte, id timebox.AggregateID) (*timebox.Event, error) {
	if len(b) == 0 || b[0] != eventVersion && b[0] != eventVersion1 {
		return nil, ErrMalformedEvent
	}
	r := NewReader(b[1:])
	ev := &timebox.Event{AggregateID: id}
	ev.Sequence = r.Seq()
	ev.Timestamp = r.Time()
	typ := r.Bytes()
	if b[0] == eventVersion {
		ev.ID = string(r.Bytes())
		ev.Metadata = r.Metadata()
	}
	if r.Bad() || len(typ) == 0 {
		return nil, ErrMalformedEvent
	}
	ev.Type = timebox.EventType(typ)
	ev.Data = r.Rest()
	return ev, nil
}
