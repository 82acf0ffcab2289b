// Package goroutine tells goroutines apart, for the few places that must
// know whether a call comes from a goroutine already inside the library.
package goroutine

import (
	"bytes"
	"runtime"
	"strconv"
)

// Token returns a value that identifies the running goroutine among the
// live ones: two goroutines running at the same time never share a token,
// and a goroutine's token does not change while it lives. On amd64 and
// arm64 it is the runtime's goroutine pointer, read in a few instructions;
// elsewhere it is ID.
func Token() uintptr {
	return token()
}

// ID returns the running goroutine's ID, parsed from the "goroutine N"
// header runtime.Stack writes. It costs a stack trace; it returns 0 only if
// the header cannot be parsed, which no Go release does.
func ID() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b, ok := bytes.CutPrefix(b, []byte("goroutine "))
	if !ok {
		return 0
	}
	if i := bytes.IndexByte(b, ' '); i >= 0 {
		b = b[:i]
	}
	id, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		return 0
	}
	return id
}
