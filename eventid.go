package timebox

import (
	"encoding/hex"
	"math/rand/v2"
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

// newEventIDAt is NewEventID with the clock read by the caller, so a batch
// reads it once.
func newEventIDAt(t time.Time) string {
	now := uint64(t.UnixMilli()) << 12
	var stamp uint64
	for {
		last := lastStamp.Load()
		stamp = max(now, last+1)
		if lastStamp.CompareAndSwap(last, stamp) {
			break
		}
	}
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
	return formatUUID(&b)
}

func formatUUID(b *[16]byte) string {
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}
