package codec

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/kode4food/timebox"
)

// ErrMalformedEvent is returned by DecodeEvent for bytes EncodeEvent cannot
// have produced.
var ErrMalformedEvent = errors.New("malformed encoded event")

const eventVersion = 1

// EncodeEvent encodes ev's sequence, timestamp, type and data (but not its
// aggregate ID, which the storage location implies) as a compact binary
// record: a version byte, the sequence, the Unix seconds and nanoseconds
// as varints, the type's length and bytes, then Data as the rest.
func EncodeEvent(ev *timebox.Event) []byte {
	buf := make([]byte, 0, 1+3*binary.MaxVarintLen64+len(ev.Type)+len(ev.Data))
	return AppendEvent(buf, ev)
}

// AppendEvent appends the encoding of ev to buf.
func AppendEvent(buf []byte, ev *timebox.Event) []byte {
	buf = append(buf, eventVersion)
	buf = binary.AppendUvarint(buf, uint64(ev.Sequence))
	buf = binary.AppendVarint(buf, ev.Timestamp.Unix())
	buf = binary.AppendUvarint(buf, uint64(ev.Timestamp.Nanosecond()))
	buf = binary.AppendUvarint(buf, uint64(len(ev.Type)))
	buf = append(buf, ev.Type...)
	return append(buf, ev.Data...)
}

// DecodeEvent decodes a record made by EncodeEvent into an event of id. The
// event's Data refers to b, which the caller must no longer change.
func DecodeEvent(b []byte, id timebox.AggregateID) (*timebox.Event, error) {
	if len(b) == 0 || b[0] != eventVersion {
		return nil, ErrMalformedEvent
	}
	r := reader{b: b[1:]}
	seq := r.uvarint()
	sec := r.varint()
	nsec := r.uvarint()
	typ := r.bytes(r.uvarint())
	if r.bad || seq > 1<<63-1 || nsec >= 1e9 || len(typ) == 0 {
		return nil, ErrMalformedEvent
	}
	return &timebox.Event{
		Timestamp:   time.Unix(sec, int64(nsec)).UTC(),
		Sequence:    int64(seq),
		Type:        timebox.EventType(typ),
		AggregateID: id,
		Data:        r.b,
	}, nil
}

type reader struct {
	b   []byte
	bad bool
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.bad = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.bad = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes(n uint64) []byte {
	if r.bad || n > uint64(len(r.b)) {
		r.bad = true
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}
