package timebox

import (
	"encoding/json"
	"fmt"
	"sync/atomic"
	"time"
)

type (
	// EventType names what happened, such as "order.created".
	EventType string

	// Event is one fact in an aggregate's history. The store assigns
	// Sequence and AggregateID when the event is appended, and an ID when
	// the event has none; Data, ID and Metadata are stored and returned
	// byte for byte, and Timestamp to the nanosecond in UTC.
	Event struct {
		Timestamp   time.Time       `json:"timestamp"`
		Sequence    int64           `json:"sequence"`
		Type        EventType       `json:"type"`
		AggregateID AggregateID     `json:"aggregate_id"`
		Data        json.RawMessage `json:"data"`

		// ID identifies the event: a UUIDv7 (NewEventID) unless the
		// caller set its own. The IDs of a batch identify the append, so
		// that sending the same batch again at the same sequence is not a
		// second write (see Store.AppendEventsContext).
		ID string `json:"id,omitempty"`

		// Metadata is optional; the context's metadata (WithMetadata) is
		// merged into it on append. Treat it as read-only: events of one
		// call may share the map.
		Metadata Metadata `json:"metadata,omitempty"`

		// Position is the event's place in the store's feed. It is set
		// on every event read from the feed (Store.ReadAll, Subscribe,
		// Consume) and zero on events read otherwise (GetEvents, an
		// Executor's appliers); the Store ignores it on append.
		Position Position `json:"position,omitzero"`

		decoded atomic.Value // holds *decodedValue
	}

	decodedValue struct {
		value any
	}
)

// GetEventValue decodes e.Data into a T. The decoded value is cached on the
// event, so many readers (and many appliers) decode it once; the cache is
// safe for concurrent use. Treat the result as read-only when T holds
// references, and never change Data after the first call.
func GetEventValue[T any](e *Event) (T, error) {
	if d, ok := e.decoded.Load().(*decodedValue); ok {
		if v, ok := d.value.(T); ok {
			return v, nil
		}
	}
	var v T
	if err := json.Unmarshal(e.Data, &v); err != nil {
		return v, fmt.Errorf("decode %q event data: %w", e.Type, err)
	}
	e.decoded.Store(&decodedValue{value: v})
	return v, nil
}

// validate checks what the store requires of an event before it is
// written.
func (e *Event) validate() error {
	if e == nil {
		return fmt.Errorf("%w: nil event", ErrInvalidEvent)
	}
	if e.Type == "" {
		return fmt.Errorf("%w: empty event type", ErrInvalidEvent)
	}
	if !json.Valid(e.Data) {
		return fmt.Errorf("%w: %q event data is not valid JSON", ErrInvalidEvent, e.Type)
	}
	return nil
}

// stampInto sets *dst to the copy of e that is stored: at sequence seq of
// id, with its time in UTC and without a monotonic reading, and md merged
// under its own metadata. The Store gives it an ID if it has none.
func (e *Event) stampInto(dst *Event, id AggregateID, seq int64, md Metadata) {
	dst.Timestamp = e.Timestamp.Round(0).UTC()
	dst.Sequence = seq
	dst.Type = e.Type
	dst.AggregateID = id
	dst.Data = e.Data
	dst.ID = e.ID
	dst.Metadata = mergeMetadata(e.Metadata, md)
}
