package codec_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/codec"
)

var oddIDs = []timebox.AggregateID{
	{"order", "1"},
	{"order:1"},
	{"order", "1", "x"},
	{"a:b"}, {"a", "b"},
	{`back\slash`}, {`"quoted"`}, {"{shard}"}, {"nul\x00byte"},
	{"naïve", "日本"}, {"%41"}, {"A"}, {"\xff\xfe"},
	{"sp ace", "semi;colon", "'; DROP TABLE x; --"},
}

func TestIDRoundTripAndDistinct(t *testing.T) {
	seen := map[string]timebox.AggregateID{}
	for _, id := range oddIDs {
		enc := codec.EncodeID(id)
		assert.NotContains(t, enc, "{")
		assert.NotContains(t, enc, "}")
		assert.NotContains(t, enc, "\x00")
		if prev, ok := seen[enc]; ok {
			t.Fatalf("%q and %q both encode to %q", prev, id, enc)
		}
		seen[enc] = id
		dec, err := codec.DecodeID(enc)
		require.NoError(t, err)
		assert.Equal(t, id, dec)
	}
}

func TestPrefixIsWholeParts(t *testing.T) {
	for _, id := range oddIDs {
		for _, prefix := range oddIDs {
			want := len(prefix) < len(id) && id.HasPrefix(prefix)
			got := strings.HasPrefix(codec.EncodeID(id), codec.EncodePrefix(prefix))
			assert.Equal(t, want, got, "id %q prefix %q", id, prefix)
		}
	}
	assert.Equal(t, "", codec.EncodePrefix(nil))
}

func TestDecodeIDRejectsMalformed(t *testing.T) {
	for _, s := range []string{"", ":", "a:", ":a", "a::b", "%", "%4", "%zz", "%41", "a b", "{x}"} {
		_, err := codec.DecodeID(s)
		assert.ErrorIs(t, err, codec.ErrMalformedID, "%q", s)
	}
}

func TestEventRoundTrip(t *testing.T) {
	id := timebox.NewAggregateID("order", "1")
	for _, ts := range []time.Time{
		{},
		time.Unix(0, 1).UTC(),
		time.Date(2026, 11, 25, 20, 0, 0, 123456789, time.UTC),
		time.Date(1500, 1, 1, 0, 0, 0, 999999999, time.UTC),
		time.Date(3000, 1, 1, 0, 0, 0, 1, time.UTC),
	} {
		for _, md := range []timebox.Metadata{
			nil,
			{"correlation": "c-1"},
			{"": "", "b": "\x00\xff", "a": "日本", "trace": `{"x":1}`},
		} {
			ev := &timebox.Event{
				Timestamp: ts, Sequence: 1<<40 + 3, Type: "order.created",
				AggregateID: id, Data: []byte(` {"a" : "ü"} `),
				ID: timebox.NewEventID(), Metadata: md,
			}
			got, err := codec.DecodeEvent(codec.EncodeEvent(ev), id)
			require.NoError(t, err)
			assert.Equal(t, ev, got)
		}
	}
}

func TestDecodeEventVersion1(t *testing.T) {
	// A record as version 1 wrote it: no ID, no metadata.
	b := []byte{1, 7, 2, 5, 3, 'a', '.', 'b', '{', '}'}
	got, err := codec.DecodeEvent(b, timebox.NewAggregateID("x"))
	require.NoError(t, err)
	assert.Equal(t, &timebox.Event{
		Timestamp: time.Unix(1, 5).UTC(), Sequence: 7, Type: "a.b",
		AggregateID: timebox.NewAggregateID("x"), Data: []byte("{}"),
	}, got)
}

func TestMetadataEncodingIsCanonical(t *testing.T) {
	md := timebox.Metadata{"b": "2", "a": "1", "c": ""}
	enc := codec.AppendMetadata(nil, md)
	assert.Equal(t, enc, codec.AppendMetadata(nil, md))
	r := codec.NewReader(enc)
	assert.Equal(t, md, r.Metadata())
	assert.False(t, r.Bad())
	assert.Zero(t, r.Len())

	// Keys out of order or repeated would give one metadata two encodings.
	for _, b := range [][]byte{
		{2, 1, 'b', 0, 1, 'a', 0},
		{2, 1, 'a', 0, 1, 'a', 0},
		{200, 1, 'a', 0},
	} {
		r := codec.NewReader(b)
		assert.Nil(t, r.Metadata())
		assert.True(t, r.Bad(), "%v", b)
	}
}

func TestDecodeEventRejectsMalformed(t *testing.T) {
	good := codec.EncodeEvent(&timebox.Event{Type: "t", Data: []byte("1")})
	for _, b := range [][]byte{
		nil, {}, {2}, {3, 0, 0, 0, 1, 't'}, good[:2], {1, 0, 0, 0, 0},
		{2, 0, 0, 0, 1, 't', 0, 1, 1, 'k', 9},
	} {
		_, err := codec.DecodeEvent(b, nil)
		assert.ErrorIs(t, err, codec.ErrMalformedEvent, "%v", b)
	}
}

func TestDecodeEventsCopiesAndCaps(t *testing.T) {
	id := timebox.NewAggregateID("order", "1")
	recs := [][]byte{
		codec.EncodeEvent(&timebox.Event{Sequence: 3, Type: "a", Data: []byte("1")}),
		codec.EncodeEvent(&timebox.Event{Sequence: 4, Type: "b", Data: []byte("22")}),
	}
	evs, err := codec.DecodeEvents(id, recs)
	require.NoError(t, err)
	require.Len(t, evs, 2)
	assert.Equal(t, []int64{3, 4}, []int64{evs[0].Sequence, evs[1].Sequence})

	// Neither the records nor id are aliased, and appending to one
	// event's Data leaves the next one alone.
	for _, r := range recs {
		clear(r)
	}
	id[0] = "changed"
	assert.Equal(t, "1", string(evs[0].Data))
	assert.Equal(t, timebox.NewAggregateID("order", "1"), evs[1].AggregateID)
	_ = append(evs[0].Data, 'x')
	assert.Equal(t, "22", string(evs[1].Data))

	strs, err := codec.DecodeEvents(id, []string{
		string(codec.EncodeEvent(&timebox.Event{Type: "a"})),
	})
	require.NoError(t, err)
	assert.Len(t, strs, 1)

	none, err := codec.DecodeEvents[[]byte](id, nil)
	require.NoError(t, err)
	assert.NotNil(t, none)
	assert.Empty(t, none)
}

func TestDecodeEventsNamesTheMalformedRecord(t *testing.T) {
	good := string(codec.EncodeEvent(&timebox.Event{Type: "t"}))
	_, err := codec.DecodeEvents(timebox.NewAggregateID("x"), []string{good, "\x09"})
	assert.ErrorIs(t, err, codec.ErrMalformedEvent)
	assert.ErrorContains(t, err, "event 1 of ")
}

func TestEventFields(t *testing.T) {
	id := timebox.NewAggregateID("x")
	md := timebox.Metadata{"a": "1"}
	f := codec.EventFields{
		Sequence: 7, Sec: 1, Nsec: 5, Type: []byte("a.b"), Data: []byte("{}"),
		ID: []byte("e"), Metadata: codec.AppendMetadata(nil, md),
	}
	var a codec.EventAlloc
	ev, err := a.Event(&f, id)
	require.NoError(t, err)
	assert.Equal(t, &timebox.Event{
		Timestamp: time.Unix(1, 5).UTC(), Sequence: 7, Type: "a.b",
		AggregateID: id, Data: []byte("{}"), ID: "e", Metadata: md,
	}, ev)

	// Stored before event IDs and metadata: neither.
	f.ID, f.Metadata = nil, nil
	ev, err = a.Event(&f, id)
	require.NoError(t, err)
	assert.Empty(t, ev.ID)
	assert.Nil(t, ev.Metadata)

	for _, b := range [][]byte{{}, {1, 1, 'a'}, {2, 1, 'b', 0, 1, 'a', 0}, {0, 0}} {
		f.Metadata = b
		_, err := a.Event(&f, id)
		assert.ErrorIs(t, err, codec.ErrMalformedEvent, "%v", b)
		assert.ErrorContains(t, err, "event 7")
	}
}

// Events made from one EventAlloc, more than its blocks hold, are each
// their own: Data is a copy of the fields' bytes, which the caller may
// reuse for the next row, and is capped, so that appending to one
// event's Data leaves the next event's alone.
func TestEventAlloc(t *testing.T) {
	id := timebox.NewAggregateID("x")
	var a codec.EventAlloc
	var f codec.EventFields
	row := make([]byte, 0, 64) // reused for every row, as a driver does
	var evs []*timebox.Event
	for i := range 1000 {
		row = append(row[:0], fmt.Sprintf(`{"n":%d}`, i)...)
		f.Sequence, f.Data = int64(i), row
		f.Type = []byte([]string{"a", "a", "b"}[i%3])
		ev, err := a.Event(&f, id)
		require.NoError(t, err)
		evs = append(evs, ev)
	}
	for i, ev := range evs {
		require.Equal(t, int64(i), ev.Sequence)
		require.Equal(t, fmt.Sprintf(`{"n":%d}`, i), string(ev.Data))
		require.Equal(t, timebox.EventType([]string{"a", "a", "b"}[i%3]), ev.Type)
		require.Equal(t, len(ev.Data), cap(ev.Data))
	}
	evs[0].Data = append(evs[0].Data, "tail"...)
	require.Equal(t, `{"n":1}`, string(evs[1].Data))

	f.Data = nil
	ev, err := a.Event(&f, id)
	require.NoError(t, err)
	require.Nil(t, ev.Data)
}
