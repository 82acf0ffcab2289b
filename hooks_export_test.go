package timebox

import "context"

// HookPointAllocs returns, for tests, the allocations of each hook point
// with no Hooks set, beyond the call it wraps.
func HookPointAllocs(s *Store, id AggregateID, allocs func(func()) float64) map[string]float64 {
	ctx := context.Background()
	req := AppendRequest{ID: id, ExpectedSequence: 0}
	var target any
	vc := &VersionConflictError{}
	e := NewExecutor(s, func() int { return 0 }, nil)
	c := &call[int]{ctx: ctx}
	calls := []*call[int]{c}
	return map[string]float64{
		"append": allocs(func() { _ = s.appendObserved(ctx, req) }) -
			allocs(func() { _, _ = s.append(ctx, req) }),
		"load": allocs(func() { _, _ = s.getSnapshotObserved(ctx, id, &target) }) -
			allocs(func() { _, _ = s.GetSnapshotContext(ctx, id, &target) }),
		"snapshot": allocs(func() { _, _ = s.putSnapshotObserved(ctx, id, 1, 0, true) }) -
			allocs(func() { _, _ = s.putSnapshot(ctx, id, 1, 0, true) }),
		"conflict": allocs(func() { s.observeConflict(ctx, id, 1, vc) }),
		"command":  allocs(func() { e.observe(id, c)() }),
		"attempt":  allocs(func() { e.attempted(calls) }),
	}
}
