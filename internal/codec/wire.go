package codec

import (
	"encoding/binary"
	"slices"
	"time"

	"github.com/kode4food/timebox"
)

// The field encodings the binary records share: sequences and counts are
// uvarints, byte strings are uvarint length-prefixed, times are Unix
// seconds (varint) and nanoseconds (uvarint), which, unlike UnixNano,
// covers every time.Time.

// AppendBytes appends b, length-prefixed, to buf.
func AppendBytes(buf, b []byte) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(b)))
	return append(buf, b...)
}

// AppendString appends s, length-prefixed, to buf.
func AppendString(buf []byte, s string) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(s)))
	return append(buf, s...)
}

// AppendTime appends t as Unix seconds and nanoseconds to buf.
func AppendTime(buf []byte, t time.Time) []byte {
	buf = binary.AppendVarint(buf, t.Unix())
	return binary.AppendUvarint(buf, uint64(t.Nanosecond()))
}

// AppendMetadata appends md to buf as its entry count and each key and
// value, length-prefixed, in key order, so equal metadata encodes alike.
func AppendMetadata(buf []byte, md timebox.Metadata) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(md)))
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		buf = AppendString(buf, k)
		buf = AppendString(buf, md[k])
	}
	return buf
}

// Reader reads fields in the order they were appended. After the first
// malformed field every read returns a zero value and Bad reports true, so
// a decoder reads everything and checks once.
type Reader struct {
	b   []byte
	bad bool
}

// NewReader returns a Reader of b.
func NewReader(b []byte) *Reader {
	return &Reader{b: b}
}

// Bad reports whether a read found a malformed field.
func (r *Reader) Bad() bool {
	return r.bad
}

// Len returns how many bytes are left.
func (r *Reader) Len() int {
	return len(r.b)
}

// Rest returns the bytes left, and leaves none.
func (r *Reader) Rest() []byte {
	v := r.b
	r.b = nil
	return v
}

// Uvarint reads an unsigned varint.
func (r *Reader) Uvarint() uint64 {
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

// Varint reads a signed varint.
func (r *Reader) Varint() int64 {
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

// Seq reads a sequence: a uvarint that fits an int64.
func (r *Reader) Seq() int64 {
	v := r.Uvarint()
	if v > 1<<63-1 {
		r.bad = true
		return 0
	}
	return int64(v)
}

// Time reads a time written by AppendTime, in UTC.
func (r *Reader) Time() time.Time {
	sec := r.Varint()
	nsec := r.Uvarint()
	if r.bad || nsec >= 1e9 {
		r.bad = true
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

// Byte reads one byte.
func (r *Reader) Byte() byte {
	if r.bad || len(r.b) == 0 {
		r.bad = true
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

// Bytes reads a length-prefixed byte string; the result refers to the
// Reader's input.
func (r *Reader) Bytes() []byte {
	n := r.Uvarint()
	if r.bad || n > uint64(len(r.b)) {
		r.bad = true
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// Metadata reads metadata written by AppendMetadata: nil when it has no
// entries. Keys must be in strictly increasing order, so every metadata
// has one encoding.
func (r *Reader) Metadata() timebox.Metadata {
	n := r.Uvarint()
	if r.bad || n == 0 {
		return nil
	}
	if n > uint64(len(r.b))/2 {
		r.bad = true
		return nil
	}
	md := make(timebox.Metadata, n)
	var last string
	for i := range n {
		k, v := string(r.Bytes()), string(r.Bytes())
		if r.bad || i > 0 && k <= last {
			r.bad = true
			return nil
		}
		md[k], last = v, k
	}
	return md
}
