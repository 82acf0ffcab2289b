package codec_test

import (
	"bytes"
	"maps"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/codec"
)

// splitParts makes an ID from s, one part per NUL-free run.
func splitParts(s string) timebox.AggregateID {
	var id timebox.AggregateID
	for p := range strings.SplitSeq(s, "\x1f") {
		if p != "" {
			id = append(id, timebox.ID(p))
		}
	}
	return id
}

func FuzzID(f *testing.F) {
	for _, s := range []string{"order\x1f1", "a:b", "a\x1fb", "%41", "{x}\x1f\x00", "日本"} {
		f.Add(s, "a")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		x, y := splitParts(a), splitParts(b)
		if len(x) == 0 || len(y) == 0 {
			return
		}
		ex, ey := codec.EncodeID(x), codec.EncodeID(y)
		dx, err := codec.DecodeID(ex)
		if err != nil || !dx.Equal(x) {
			t.Fatalf("%q: decoded %q, %v", x, dx, err)
		}
		if (ex == ey) != x.Equal(y) {
			t.Fatalf("%q and %q: encodings %q and %q", x, y, ex, ey)
		}
		want := len(y) < len(x) && x.HasPrefix(y)
		if strings.HasPrefix(ex, codec.EncodePrefix(y)) != want {
			t.Fatalf("prefix %q of %q: want %v", y, x, want)
		}
	})
}

// splitMetadata makes metadata from s: "k=v" entries separated by 0x1f.
func splitMetadata(s string) timebox.Metadata {
	var md timebox.Metadata
	for e := range strings.SplitSeq(s, "\x1f") {
		if md == nil {
			md = timebox.Metadata{}
		}
		k, v, _ := strings.Cut(e, "=")
		md[k] = v
	}
	if s == "" {
		return nil
	}
	return md
}

func FuzzEvent(f *testing.F) {
	f.Add(int64(0), int64(0), int64(0), "t", "", "", []byte("{}"))
	f.Add(int64(1<<62), int64(-1<<40), int64(999999999), "a.b",
		"0190-7", "a=1\x1fb=\x00\x1f=", []byte(`"x"`))
	f.Fuzz(func(t *testing.T, seq, sec, nsec int64, typ, id, md string, data []byte) {
		if seq < 0 || typ == "" || nsec < 0 || nsec >= 1e9 {
			return
		}
		ev := &timebox.Event{
			Timestamp: time.Unix(sec, nsec).UTC(), Sequence: seq,
			Type: timebox.EventType(typ), Data: data,
			ID: id, Metadata: splitMetadata(md),
		}
		got, err := codec.DecodeEvent(codec.EncodeEvent(ev), nil)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Timestamp.Equal(ev.Timestamp) || got.Sequence != seq ||
			got.Type != ev.Type || !bytes.Equal(got.Data, data) ||
			got.ID != id || !maps.Equal(got.Metadata, ev.Metadata) {
			t.Fatalf("round trip changed %+v into %+v", ev, got)
		}
	})
}

func FuzzDecodeEvent(f *testing.F) {
	f.Add(codec.EncodeEvent(&timebox.Event{Type: "t", Data: []byte("1")}))
	f.Add(codec.EncodeEvent(&timebox.Event{
		Type: "t", Data: []byte("1"), ID: timebox.NewEventID(),
		Metadata: timebox.Metadata{"a": "1", "b": ""},
	}))
	f.Add([]byte{1, 7, 2, 5, 3, 'a', '.', 'b', '{', '}'}) // version 1
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := codec.DecodeEvent(b, nil)
		evs, errs := codec.DecodeEvents(nil, [][]byte{b})
		if (err == nil) != (errs == nil) ||
			err == nil && (len(evs) != 1 || !reflect.DeepEqual(evs[0], ev)) {
			t.Fatalf("%x: DecodeEvents gives %v, %v; DecodeEvent %+v, %v", b, evs, errs, ev, err)
		}
		if err != nil {
			return
		}
		again, err := codec.DecodeEvent(codec.EncodeEvent(ev), nil)
		if err != nil || !again.Timestamp.Equal(ev.Timestamp) ||
			again.Sequence != ev.Sequence || again.Type != ev.Type ||
			!bytes.Equal(again.Data, ev.Data) || again.ID != ev.ID ||
			!maps.Equal(again.Metadata, ev.Metadata) {
			t.Fatalf("%x decodes to %+v, which does not round-trip: %+v, %v", b, ev, again, err)
		}
	})
}
