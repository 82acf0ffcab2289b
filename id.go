package timebox

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

type (
	// ID is one part of an AggregateID.
	ID string

	// AggregateID names an aggregate by one or more non-empty parts, such
	// as ["order", "42"]. Parts may hold any bytes; two IDs are the same
	// only when their parts are.
	AggregateID []ID
)

// NewAggregateID returns an AggregateID made of parts.
func NewAggregateID(parts ...ID) AggregateID {
	return AggregateID(parts)
}

// String prints id as a list of quoted parts, ["order","42"]: the JSON
// array for printable text, with Go escapes (\xff) for bytes that are not
// UTF-8. Distinct IDs always print distinctly, so log lines and errors
// name one aggregate; it is still meant for humans, not as a storage key.
func (id AggregateID) String() string {
	var b strings.Builder
	b.WriteByte('[')
	for i, p := range id {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Quote(string(p)))
	}
	b.WriteByte(']')
	return b.String()
}

// Equal reports whether id and other have the same parts.
func (id AggregateID) Equal(other AggregateID) bool {
	return slices.Equal(id, other)
}

// HasPrefix reports whether id starts with all the whole parts of prefix.
// Every ID has the empty prefix.
func (id AggregateID) HasPrefix(prefix AggregateID) bool {
	return len(prefix) <= len(id) && slices.Equal(id[:len(prefix)], prefix)
}

// Compare orders IDs part by part; a prefix sorts before a longer ID.
func (id AggregateID) Compare(other AggregateID) int {
	return slices.Compare(id, other)
}

// Validate returns an error matching ErrInvalidAggregateID when id has no
// parts or an empty part.
func (id AggregateID) Validate() error {
	if len(id) == 0 {
		return fmt.Errorf("%w: no parts", ErrInvalidAggregateID)
	}
	for i, p := range id {
		if p == "" {
			return fmt.Errorf("%w: part %d is empty", ErrInvalidAggregateID, i)
		}
	}
	return nil
}

// key returns a string that only id maps to: each part prefixed by its
// length.
func (id AggregateID) key() string {
	n := 0
	for _, p := range id {
		n += len(p) + 4 // room for a length of up to 3 digits and ':'
	}
	var b strings.Builder
	b.Grow(n)
	var num [20]byte
	for _, p := range id {
		b.Write(strconv.AppendInt(num[:0], int64(len(p)), 10))
		b.WriteByte(':')
		b.WriteString(string(p))
	}
	return b.String()
}

// Clone returns a copy of id that shares no memory with it.
func (id AggregateID) Clone() AggregateID {
	return slices.Clone(id)
}
