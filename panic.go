package timebox

import (
	"errors"
	"log/slog"
	"runtime/debug"
)

// errPanicked classes a panic recovered where no component is known.
var errPanicked = errors.New("panicked")

// repanic, deferred directly, turns a panic into a *PanicError of kind
// (keeping one that already is) and panics with it again, so the frame
// that finally recovers knows which component failed.
func repanic(kind error) {
	if r := recover(); r != nil {
		panic(asPanicError(kind, r))
	}
}

// asPanicError returns r as a *PanicError, classed as kind unless it is
// one already.
func asPanicError(kind error, r any) *PanicError {
	if pe, ok := r.(*PanicError); ok {
		return pe
	}
	return &PanicError{Kind: kind, Value: r, Stack: debug.Stack()}
}

// recovered logs a recovered panic once, at ERROR with its stack, and
// returns it as an error.
func recovered(log *slog.Logger, kind error, r any, id AggregateID) error {
	pe := asPanicError(kind, r)
	log.Error("timebox: "+pe.Kind.Error(),
		"aggregate", id.String(), "panic", pe.Value, "stack", string(pe.Stack))
	return pe
}
