package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

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
	ev := &timebox.Event{AggregateID: id}
	typ, eid, err := decodeInto(ev, b)
	if err != nil {
		return nil, err
	}
	ev.Type, ev.ID = timebox.EventType(typ), string(eid)
	return ev, nil
}

// decodeInto decodes the record b into ev, all but its type and ID, which
// it returns as slices of b.
func decodeInto(ev *timebox.Event, b []byte) (typ, eid []byte, err error) {
	if len(b) == 0 || b[0] != eventVersion && b[0] != eventVersion1 {
		return nil, nil, ErrMalformedEvent
	}
	r := NewReader(b[1:])
	ev.Sequence = r.Seq()
	ev.Timestamp = r.Time()
	typ = r.Bytes()
	if b[0] == eventVersion {
		eid = r.Bytes()
		ev.Metadata = r.Metadata()
	}
	if r.Bad() || len(typ) == 0 {
		return nil, nil, ErrMalformedEvent
	}
	ev.Data = r.Rest()
	return typ, eid, nil
}

// DecodeEvents decodes records made by EncodeEvent, all of aggregate id,
// in order: the one path from stored records to events for every backend
// that stores them whole. The events share one copy of id and one copy of
// the records' bytes, each Data capped so that appending to one never
// reaches another, so none aliases id or recs: a backend may pass bytes it
// must not keep (a bbolt value, a reply buffer). A record that cannot be
// decoded fails the call with an error wrapping ErrMalformedEvent that
// names its index.
//
// The allocations are per call, not per event: the events are one array,
// their IDs substrings of one string, and an event whose type is the one
// before it shares that type's string. So an event kept alone keeps the
// batch's memory alive, as its Data always did.
func DecodeEvents[R ~string | ~[]byte](
	id timebox.AggregateID, recs []R,
) ([]*timebox.Event, error) {
	size := 0
	for _, r := range recs {
		size += len(r)
	}
	buf := make([]byte, 0, size)
	id = slices.Clone(id)
	evs := make([]timebox.Event, len(recs))
	res := make([]*timebox.Event, len(recs))
	eids := make([][]byte, len(recs)) // slices of buf
	idLen := 0
	var typ timebox.EventType
	for i, r := range recs {
		start := len(buf)
		buf = append(buf, r...)
		ev := &evs[i]
		t, eid, err := decodeInto(ev, buf[start:len(buf):len(buf)])
		if err != nil {
			return nil, fmt.Errorf("event %d of %s: %w", i, id, err)
		}
		if string(t) != string(typ) {
			typ = timebox.EventType(t)
		}
		ev.AggregateID, ev.Type = id, typ
		eids[i] = eid
		idLen += len(eid)
		res[i] = ev
	}
	var all strings.Builder
	all.Grow(idLen)
	for _, eid := range eids {
		all.Write(eid)
	}
	ids := all.String()
	for i, eid := range eids {
		evs[i].ID, ids = ids[:len(eid)], ids[len(eid):]
	}
	return res, nil
}

// EventFields are one event's fields as a backend that stores them apart
// (PostgreSQL's columns) reads them back; EventAlloc.Event is the one
// path from them to an event.
type EventFields struct {
	Sequence int64
	Sec      int64 // Unix seconds
	Nsec     int32 // nanoseconds within Sec
	Type     []byte
	Data     []byte
	ID       []byte // nil for an event stored without one
	Metadata []byte // AppendMetadata's encoding; nil for none
}

// Bounds of the blocks an EventAlloc takes events and bytes from: they
// start small, so that a read of one event allocates little, and double
// up to these.
const (
	allocEvents = 256
	allocBytes  = 64 << 10
)

// EventAlloc makes the events of many EventFields a block at a time, as
// DecodeEvents does for a batch: the events come from blocks of Events,
// their Data from blocks of bytes, and an event of the same type as the
// one before shares its Type string, so reading many events costs a few
// allocations rather than several per event. An event keeps the blocks it
// came from alive. Its Data is capped at its length: appending to it
// copies. The zero EventAlloc is ready to use; it is not safe for
// concurrent use.
type EventAlloc struct {
	evs  []timebox.Event
	buf  []byte
	typ  timebox.EventType
	next int // size of the next block of events
}

// Event returns the event of id that f holds, in UTC; its AggregateID is
// id, not copied, and its Data a copy of f.Data, so f's slices may be the
// driver's, valid only until its next row. It fails with an error
// wrapping ErrMalformedEvent, naming the sequence, when f.Metadata is not
// an encoding AppendMetadata makes.
func (a *EventAlloc) Event(f *EventFields, id timebox.AggregateID) (*timebox.Event, error) {
	var md timebox.Metadata
	if f.Metadata != nil {
		r := NewReader(f.Metadata)
		if md = r.Metadata(); r.Bad() || r.Len() != 0 {
			return nil, fmt.Errorf("%w: metadata of event %d", ErrMalformedEvent, f.Sequence)
		}
	}
	if len(a.evs) == 0 {
		a.next = min(max(2*a.next, 16), allocEvents)
		a.evs = make([]timebox.Event, a.next)
	}
	ev := &a.evs[0]
	a.evs = a.evs[1:]
	if string(f.Type) != string(a.typ) {
		a.typ = timebox.EventType(f.Type)
	}
	*ev = timebox.Event{
		Timestamp:   time.Unix(f.Sec, int64(f.Nsec)).UTC(),
		Sequence:    f.Sequence,
		Type:        a.typ,
		AggregateID: id,
		Data:        a.bytes(f.Data),
		ID:          string(f.ID),
		Metadata:    md,
	}
	return ev, nil
}

// bytes returns a copy of b (nil for nil) from a's block of bytes.
func (a *EventAlloc) bytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	if cap(a.buf)-len(a.buf) < len(b) {
		a.buf = make([]byte, 0, max(len(b), min(2*cap(a.buf), allocBytes), 1<<10))
	}
	start := len(a.buf)
	a.buf = append(a.buf, b...)
	return a.buf[start:len(a.buf):len(a.buf)]
}
