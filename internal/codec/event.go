package codec

import (
	"encoding/binary"
	"errors"

	"github.com/kode4food/timebox"
)

// ErrMalformedEvent is returned by DecodeEvent for bytes EncodeEvent cannot
// have produced.
var ErrMalformedEvent = errors.New("malformed encoded event")

const eventVersion = 1

// EncodeEvent encodes ev's sequence, timestamp, type and data (but not its
// aggregate ID, which the storage location implies) as a compact binary
// record: a version byte, the sequence, the timestamp (AppendTime), the
// length-prefixed type, then Data as the rest.
func EncodeEvent(ev *timebox.Event) []byte {
	buf := make([]byte, 0, 1+3*binary.MaxVarintLen64+len(ev.Type)+len(ev.Data))
	return AppendEvent(buf, ev)
}

// AppendEvent appends the encoding of ev to buf.
func AppendEvent(buf []byte, ev *timebox.Event) []byte {
	buf = append(buf, eventVersion)
	buf = binary.AppendUvarint(buf, uint64(ev.Sequence))
	buf = AppendTime(buf, ev.Timestamp)
	buf = AppendString(buf, string(ev.Type))
	return append(buf, ev.Data...)
}

// DecodeEvent decodes a record made by EncodeEvent into an event of id. The
// event's Data refers to b, which the caller must no longer change.
func DecodeEvent(b []byte, id timebox.AggregateID) (*timebox.Event, error) {
	if len(b) == 0 || b[0] != eventVersion {
		return nil, ErrMalformedEvent
	}
	r := NewReader(b[1:])
	seq := r.Seq()
	at := r.Time()
	typ := r.Bytes()
	if r.Bad() || len(typ) == 0 {
		return nil, ErrMalformedEvent
	}
	return &timebox.Event{
		Timestamp:   at,
		Sequence:    seq,
		Type:        timebox.EventType(typ),
		AggregateID: id,
		Data:        r.Rest(),
	}, nil
}
