package timebox

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
)

// Position is an event's place in its store's feed (see Store.ReadAll). A
// store's positions are totally ordered, first by Commit, then by Offset:
// the events of one append share a Commit and take Offsets 0, 1, 2, ... in
// sequence order, and a later append to an aggregate always has a greater
// Commit than an earlier one. Positions are not dense: a reader must not
// expect Commit to grow by one. The zero Position is before every event.
//
// What Commit counts is the backend's: a counter of appends (memory, and
// Redis's feed stream), the writing transaction's ID (PostgreSQL), the
// Raft log index (raft). Each backend's DESIGN.md says how it makes the
// order gap-safe.
type Position struct {
	Commit uint64 `json:"commit"`
	Offset uint64 `json:"offset"`
}

// Compare returns -1, 0 or +1 as p is before, at or after q.
func (p Position) Compare(q Position) int {
	if c := cmp.Compare(p.Commit, q.Commit); c != 0 {
		return c
	}
	return cmp.Compare(p.Offset, q.Offset)
}

// IsZero reports whether p is the zero Position, before every event.
func (p Position) IsZero() bool {
	return p == Position{}
}

// String prints p as "commit.offset", the form ParsePosition reads.
func (p Position) String() string {
	return strconv.FormatUint(p.Commit, 10) + "." +
		strconv.FormatUint(p.Offset, 10)
}

// ParsePosition reads the "commit.offset" form Position.String prints. It
// returns an error matching ErrInvalidPosition for anything else.
func ParsePosition(s string) (Position, error) {
	c, o, ok := strings.Cut(s, ".")
	if !ok {
		return Position{}, fmt.Errorf("%w: %q", ErrInvalidPosition, s)
	}
	commit, err1 := strconv.ParseUint(c, 10, 64)
	offset, err2 := strconv.ParseUint(o, 10, 64)
	if err1 != nil || err2 != nil {
		return Position{}, fmt.Errorf("%w: %q", ErrInvalidPosition, s)
	}
	return Position{Commit: commit, Offset: offset}, nil
}

// MarshalText encodes p as Position.String does.
func (p Position) MarshalText() ([]byte, error) {
	return []byte(p.String()), nil
}

// UnmarshalText decodes what MarshalText encodes.
func (p *Position) UnmarshalText(b []byte) error {
	q, err := ParsePosition(string(b))
	if err != nil {
		return err
	}
	*p = q
	return nil
}

// PartitionOf returns the partition, in [0, n), of a durable consumer
// split into n partitions (WithPartitions) that handles id's events: a
// 64-bit FNV-1a hash of id's parts, each followed by its length, modulo n.
// The function is part of the contract and will not change, so a
// partition keeps its aggregates across versions. It returns 0 when n is
// below 2.
func PartitionOf(id AggregateID, n int) int {
	if n < 2 {
		return 0
	}
	h := fnv.New64a()
	var l [8]byte
	for _, p := range id {
		_, _ = h.Write([]byte(p))
		n := len(p)
		for i := range l {
			l[i] = byte(n >> (8 * i))
		}
		_, _ = h.Write(l[:])
	}
	return int(h.Sum64() % uint64(n))
}
