// Package codec holds the encodings the backends share: aggregate IDs as
// printable keys, and events as compact binary records.
package codec

import (
	"errors"
	"strings"

	"github.com/kode4food/timebox"
)

// Separator joins the encoded parts of an ID. It never appears inside an
// encoded part, so an encoded prefix of whole parts followed by Separator
// is a byte prefix of exactly the IDs that start with those parts.
const Separator = ':'

// ErrMalformedID is returned by DecodeID for a key EncodeID cannot have
// produced.
var ErrMalformedID = errors.New("malformed encoded aggregate ID")

const hexDigits = "0123456789ABCDEF"

// EncodeID encodes id as printable ASCII: each part percent-escapes every
// byte outside [A-Za-z0-9-_.~/@], and parts are joined with Separator. The
// encoding is injective, never holds '{', '}', NUL or invalid UTF-8, and is
// safe as a Redis key segment or a PostgreSQL text value.
func EncodeID(id timebox.AggregateID) string {
	var b strings.Builder
	n := len(id)
	for _, p := range id {
		n += len(p)
	}
	b.Grow(n) // exact when no byte needs escaping
	for i, p := range id {
		if i > 0 {
			b.WriteByte(Separator)
		}
		for j := 0; j < len(p); j++ {
			c := p[j]
			if plain(c) {
				b.WriteByte(c)
				continue
			}
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		}
	}
	return b.String()
}

// EncodePrefix returns the byte prefix shared by the encodings of every ID
// that starts with the whole parts of prefix, other than prefix itself.
func EncodePrefix(prefix timebox.AggregateID) string {
	if len(prefix) == 0 {
		return ""
	}
	return EncodeID(prefix) + string(Separator)
}

// DecodeID reverses EncodeID.
func DecodeID(s string) (timebox.AggregateID, error) {
	if s == "" {
		return nil, ErrMalformedID
	}
	var id timebox.AggregateID
	var part []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == Separator:
			if len(part) == 0 {
				return nil, ErrMalformedID
			}
			id = append(id, timebox.ID(part))
			part = part[:0]
		case c == '%':
			if i+2 >= len(s) {
				return nil, ErrMalformedID
			}
			hi, lo := unhex(s[i+1]), unhex(s[i+2])
			if hi < 0 || lo < 0 {
				return nil, ErrMalformedID
			}
			b := byte(hi<<4 | lo)
			if plain(b) {
				return nil, ErrMalformedID
			}
			part = append(part, b)
			i += 2
		case plain(c):
			part = append(part, c)
		default:
			return nil, ErrMalformedID
		}
	}
	if len(part) == 0 {
		return nil, ErrMalformedID
	}
	return append(id, timebox.ID(part)), nil
}

func plain(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-_.~/@", c) >= 0
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}
