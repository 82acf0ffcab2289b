package timebox

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Backoff bounds between retries of a transient error: the first wait is
// up to minBackoff, each next one up to twice the last, at most maxBackoff,
// each drawn at random from the upper half of its bound so that clients
// failing together do not retry together.
const (
	minBackoff = 2 * time.Millisecond
	maxBackoff = 100 * time.Millisecond
)

// retry calls op until it returns nil or an error that is not transient,
// or until ctx ends or the Store's RetryTimeout passes after the first
// failure; it then returns op's last error. ErrUnavailable is transient;
// so is ErrUnknownOutcome when write is set, because the Store's appends
// are idempotent. ErrClosed never is. Once an attempt's outcome was
// unknown, a later error other than a conflict is returned wrapped in
// ErrUnknownOutcome, since that attempt may still have written.
func (s *Store) retry(ctx context.Context, write bool, op func() error) error {
	var deadline time.Time
	var unknown bool
	for attempt := 0; ; attempt++ {
		err := op()
		if err == nil {
			return nil
		}
		if !transient(err, write) || ctx.Err() != nil {
			return stillUnknown(err, unknown)
		}
		unknown = unknown || errors.Is(err, ErrUnknownOutcome)
		if deadline.IsZero() {
			timeout := s.config.RetryTimeout
			if timeout == 0 {
				timeout = DefaultRetryTimeout
			}
			deadline = time.Now().Add(timeout)
		}
		wait := backoff(attempt, minBackoff, maxBackoff)
		if time.Now().Add(wait).After(deadline) {
			return stillUnknown(err, unknown)
		}
		if !sleep(ctx, wait) {
			return stillUnknown(fmt.Errorf("%w: %w", ctx.Err(), err), unknown)
		}
	}
}

func transient(err error, write bool) bool {
	if errors.Is(err, ErrClosed) {
		return false
	}
	return errors.Is(err, ErrUnavailable) ||
		write && errors.Is(err, ErrUnknownOutcome)
}

func stillUnknown(err error, unknown bool) error {
	if !unknown || errors.Is(err, ErrUnknownOutcome) ||
		errors.Is(err, ErrVersionConflict) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnknownOutcome, err)
}

// backoff returns a random wait in the upper half of min(lo<<attempt, hi).
func backoff(attempt int, lo, hi time.Duration) time.Duration {
	d := hi
	if attempt < 20 {
		d = min(lo<<attempt, hi)
	}
	return d/2 + rand.N(d/2+1)
}

// sleep waits for d, or until ctx is done, reporting whether it slept the
// whole of d.
func sleep(ctx context.Context, d time.Duration) bool {
	return wait(ctx, nil, d) == nil
}

// sleep (the Store's) waits d and returns nil, or returns ErrClosed as
// soon as the Store closes, or ctx's error as soon as ctx ends.
func (s *Store) sleep(ctx context.Context, d time.Duration) error {
	return wait(ctx, s.done, d)
}

// wait waits d and returns nil, or ErrClosed as soon as done is closed
// (nil: never), or ctx's error as soon as ctx ends.
func wait(ctx context.Context, done <-chan struct{}, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-done:
		return ErrClosed
	}
}
