package timebox

import (
	"slices"

	"github.com/kode4food/timebox/internal/goroutine"
)

// queue is one aggregate's line of Exec calls in an Executor. It exists
// while a caller leads it: the leader runs a batch of calls (its own first)
// and commits them in one append, then hands the queue to the first call
// still waiting. Waiting calls are not started and may withdraw.
type queue[T any] struct {
	waiting []*call[T]
	// runner is the goroutine running the batch's commands, 0 between
	// batches; an Exec from it is a command executing on its own aggregate.
	runner uintptr
}

// errGoexit fails the calls of a batch one of whose commands called
// runtime.Goexit (as t.FailNow does): nothing of the batch was written.
var errGoexit = &PanicError{
	Kind:  ErrCommandPanicked,
	Value: "runtime.Goexit called in a command of the batch; nothing written",
}

// enqueue adds c to key's queue. It reports whether c must lead the queue
// because no one else does, or returns ErrReentrantExec when the caller is
// the goroutine running the queue's commands, or waiting would close a
// cycle (see cycle).
func (e *Executor[T]) enqueue(key string, c *call[T]) (bool, error) {
	me := goroutine.Token()
	e.mu.Lock()
	defer e.mu.Unlock()
	q := e.queues[key]
	switch {
	case q == nil:
		e.queues[key] = &queue[T]{}
		c.started = true
		return true, nil
	case e.cycle(q.runner, me):
		return false, ErrReentrantExec
	}
	q.waiting = append(q.waiting, c)
	c.caller = me
	e.waiting[me] = key
	return false, nil
}

// cycle reports whether goroutine me waiting for runner, the goroutine
// running a queue's commands, would wait for itself: runner is me, or
// runner waits in a queue whose runner waits ... for me. e.mu is held.
func (e *Executor[T]) cycle(runner, me uintptr) bool {
	for range len(e.waiting) + 1 {
		if runner == 0 {
			return false
		}
		if runner == me {
			return true
		}
		key, ok := e.waiting[runner]
		if !ok || e.queues[key] == nil {
			return false
		}
		runner = e.queues[key].runner
	}
	return false
}

// waited records that c's caller no longer waits in a queue.
func (e *Executor[T]) waited(c *call[T]) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.waiting, c.caller)
}

// await waits until c is finished by a leader, returning false, or handed
// the queue, returning true. When c's context is done first and c has not
// started, c withdraws from the queue and finishes with the context's
// error; once started, c waits for its batch's outcome.
func (e *Executor[T]) await(key string, c *call[T]) bool {
	defer e.waited(c)
	select {
	case finished := <-c.done:
		return !finished
	case <-c.ctx.Done():
	}
	if e.withdraw(key, c) {
		c.err = c.ctx.Err()
		return false
	}
	return !<-c.done
}

// withdraw removes c from key's queue unless it has started.
func (e *Executor[T]) withdraw(key string, c *call[T]) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if c.started {
		return false
	}
	q := e.queues[key]
	if i := slices.Index(q.waiting, c); i >= 0 {
		q.waiting = slices.Delete(q.waiting, i, i+1)
	}
	return true
}

// lead runs a batch that starts with own, the leader's call, and then
// hands the queue on. The queue is released however the batch ends: when
// a command calls runtime.Goexit, the batch's other calls fail with
// errGoexit rather than wedging the aggregate.
func (e *Executor[T]) lead(key string, id AggregateID, own *call[T]) {
	batch := e.take(key, own)
	ended := false
	defer func() {
		if !ended {
			e.cache.Remove(key)
			// Every call fails, but one dropped for its ctx: the others
			// were decided on a state that included events never
			// written, their errors too.
			for _, c := range batch {
				if err := c.ctx.Err(); err == nil || c.err != err {
					c.err = errGoexit
				}
			}
		}
		next := e.handOff(key)
		for _, c := range batch[1:] {
			c.done <- true
		}
		if next != nil {
			next.done <- false
		}
	}()
	e.run(key, id, batch)
	ended = true
}

// take returns own and up to maxBatch-1 waiting calls, marked started.
func (e *Executor[T]) take(key string, own *call[T]) []*call[T] {
	e.mu.Lock()
	defer e.mu.Unlock()
	q := e.queues[key]
	n := min(len(q.waiting), maxBatch-1)
	batch := make([]*call[T], 0, n+1)
	batch = append(batch, own)
	for _, c := range q.waiting[:n] {
		c.started = true
		batch = append(batch, c)
	}
	clear(q.waiting[:n])
	q.waiting = q.waiting[n:]
	return batch
}

// handOff returns the first waiting call, marked started, for it to lead
// the queue next, or deletes the queue and returns nil.
func (e *Executor[T]) handOff(key string) *call[T] {
	e.mu.Lock()
	defer e.mu.Unlock()
	q := e.queues[key]
	q.runner = 0
	if len(q.waiting) == 0 {
		delete(e.queues, key)
		return nil
	}
	next := q.waiting[0]
	next.started = true
	q.waiting[0] = nil
	q.waiting = q.waiting[1:]
	return next
}

// setRunner records g as the goroutine running key's commands (0: none).
func (e *Executor[T]) setRunner(key string, g uintptr) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.queues[key].runner = g
}
