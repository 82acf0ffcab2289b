// Package closer holds the closed flag the backends share, so that each
// refuses calls after Close the same way.
package closer

import (
	"sync/atomic"

	"github.com/kode4food/timebox"
)

// Flag records that a backend was closed. Its zero value is open; it is
// safe for concurrent use. The embedded atomic.Bool is true once closed:
// a backend's Close sets it with Swap(true) and releases its resources
// only when that returns false.
type Flag struct {
	atomic.Bool
}

// Check returns nil while f is open and timebox.ErrClosed once it is
// closed. A call that passed Check may still run into the Close that
// follows; the backend's error classification handles that.
func (f *Flag) Check() error {
	if f.Load() {
		return timebox.ErrClosed
	}
	return nil
}
