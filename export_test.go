package timebox

// Pending returns how many calls wait in id's queue, for tests.
func (e *Executor[T]) Pending(id AggregateID) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if q := e.queues[id.key()]; q != nil {
		return len(q.waiting)
	}
	return 0
}
