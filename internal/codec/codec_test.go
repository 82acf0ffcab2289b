package codec_test

import (
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
