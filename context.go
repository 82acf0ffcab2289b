package timebox

import (
	"context"
	"errors"
	"sync"
	"time"
)

// joined is the context of a batch's load and append: it carries the first
// call's values and is done only once every call's context is done, so one
// caller giving up does not abort the work the others wait for. Its Err is
// then context.DeadlineExceeded when a call's deadline passed, else
// context.Canceled, so errors.Is tells a deadline from a cancellation. Err
// looks at the calls' contexts itself, so a backend checking Err before
// it sends never misses a batch whose callers have all given up.
type joined struct {
	context.Context // values only: never done
	ctxs            []context.Context
	deadline        time.Time
	hasDeadline     bool
	done            chan struct{}
	stops           []func() bool

	mu     sync.Mutex
	err    error
	afters map[*func()]struct{}
}

// joinContexts returns the batch context of ctxs (see joined) and a release
// function to call once the batch is over.
func joinContexts(ctxs []context.Context) (context.Context, func()) {
	for _, ctx := range ctxs {
		if ctx.Done() == nil {
			return ctx, func() {} // never done, so neither is the join
		}
	}
	if len(ctxs) == 1 {
		return ctxs[0], func() {}
	}
	j := &joined{
		Context:     context.WithoutCancel(ctxs[0]),
		ctxs:        ctxs,
		done:        make(chan struct{}),
		hasDeadline: true,
	}
	for _, ctx := range ctxs {
		dl, ok := ctx.Deadline()
		j.hasDeadline = j.hasDeadline && ok
		if ok && dl.After(j.deadline) {
			j.deadline = dl
		}
	}
	if !j.hasDeadline {
		j.deadline = time.Time{}
	}
	j.stops = make([]func() bool, len(ctxs))
	for i, ctx := range ctxs {
		j.stops[i] = context.AfterFunc(ctx, func() { _ = j.Err() })
	}
	return j, j.release
}

func (j *joined) release() {
	for _, stop := range j.stops {
		stop()
	}
}

// Deadline is the latest of the calls' deadlines, none if one has none.
func (j *joined) Deadline() (time.Time, bool) {
	return j.deadline, j.hasDeadline
}

// Done is closed once every call's context is done.
func (j *joined) Done() <-chan struct{} {
	return j.done
}

// Err is nil until every call's context is done; then it closes Done, if
// not yet closed, and returns context.DeadlineExceeded when one of them
// passed its deadline, else context.Canceled.
func (j *joined) Err() error {
	j.mu.Lock()
	if j.err != nil {
		defer j.mu.Unlock()
		return j.err
	}
	err := context.Canceled
	for _, ctx := range j.ctxs {
		switch cerr := ctx.Err(); {
		case cerr == nil:
			j.mu.Unlock()
			return nil
		case errors.Is(cerr, context.DeadlineExceeded):
			err = context.DeadlineExceeded
		}
	}
	j.err = err
	afters := j.afters
	j.afters = nil
	close(j.done)
	j.mu.Unlock()
	for f := range afters {
		go (*f)()
	}
	return err
}

// AfterFunc lets context.AfterFunc and contexts derived from j wait on it
// without a goroutine each.
func (j *joined) AfterFunc(f func()) func() bool {
	if j.Err() != nil {
		go f()
		return func() bool { return false }
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err != nil { // done meanwhile; Err ran the others
		go f()
		return func() bool { return false }
	}
	if j.afters == nil {
		j.afters = map[*func()]struct{}{}
	}
	j.afters[&f] = struct{}{}
	return func() bool {
		j.mu.Lock()
		defer j.mu.Unlock()
		_, ok := j.afters[&f]
		delete(j.afters, &f)
		return ok
	}
}
