package timebox

import (
	"encoding/hex"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"
)

// lastStamp is the latest (milliseconds << 12 | counter) an event ID was
// made with, so IDs from one process are strictly increasing.
var lastStamp atomic.Uint64

// NewEventID returns a new UUIDv7 (RFC 9562) as a lowercase hyphenated
// string: 48 bits of Unix milliseconds, a 12-bit counter that keeps the IDs
// made by one process strictly increasing (also within one millisecond and
// across a clock step back), and 62 random bits. IDs sort by creation time
// as strings, and two processes practically never make the same one.
func NewEventID() string {
	return newEventIDAt(time.Now())
}

// newEventIDAt is NewEventID with the clock read by the caller.
func newEventIDAt(t time.Time) string {
	var s [idLen]byte
	formatEventID(s[:], reserveStamps(t, 1))
	return string(s[:])
}

// setEventIDs gives each of evs that has no ID a new one, as NewEventID
// would in turn, with the clock read once and one allocation for all of
// them.
func setEventIDs(evs []*Event) {
	n := 0
	for _, ev := range evs {
		if ev.ID == "" {
			n++
		}
	}
	if n == 0 {
		return
	}
	var buf strings.Builder
	buf.Grow(n * idLen)
	stamp := reserveStamps(time.Now(), uint64(n))
	var s [idLen]byte
	for range n {
		formatEventID(s[:], stamp)
		buf.Write(s[:])
		stamp++
	}
	ids := buf.String()
	for _, ev := range evs {
		if ev.ID == "" {
			ev.ID, ids = ids[:idLen], ids[idLen:]
		}
	}
}

// idLen is the length of an event ID made here.
const idLen = 36

// reserveStamps returns the first of n consecutive stamps, each later than
// every stamp reserved before, at t's millisecond or after.
func reserveStamps(t time.Time, n uint64) uint64 {
	now := uint64(t.UnixMilli()) << 12
	for {
		last := lastStamp.Load()
		first := max(now, last+1)
		if lastStamp.CompareAndSwap(last, first+n-1) {
			return first
		}
	}
}

// formatEventID writes into s the UUIDv7 of stamp with fresh random bits.
func formatEventID(s []byte, stamp uint64) {
	var b [16]byte
	ms, seq := stamp>>12, stamp&0xfff
	for i := range 6 {
		b[i] = byte(ms >> (40 - 8*i))
	}
	b[6] = 0x70 | byte(seq>>8)
	b[7] = byte(seq)
	r := rand.Uint64()
	for i := range 8 {
		b[8+i] = byte(r >> (56 - 8*i))
	}
	b[8] = 0x80 | b[8]&0x3f
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
}
