package raft

import "sync/atomic"

// A follower learns that an entry is committed from the leader's next
// AppendEntries, which, when no other write follows, comes only after
// CommitTimeout. A follower waiting to apply a write it forwarded would
// wait that long; so after answering a forwarded call, the leader appends
// a barrier when nothing newer is in its log, and that barrier's
// AppendEntries carries the commit index at once. Under load, later writes
// do the same and no barrier is added.
type nudger struct {
	idx    atomic.Uint64
	signal chan struct{}
}

func newNudger() *nudger {
	return &nudger{signal: make(chan struct{}, 1)}
}

// nudge asks for followers to learn soon that idx is committed.
func (p *Persistence) nudge(idx uint64) {
	n := p.nudger
	for {
		cur := n.idx.Load()
		if cur >= idx || n.idx.CompareAndSwap(cur, idx) {
			break
		}
	}
	select {
	case n.signal <- struct{}{}:
	default:
	}
}

func (p *Persistence) runNudger() {
	defer p.wg.Done()
	for {
		select {
		case <-p.done:
			return
		case <-p.nudger.signal:
		}
		if p.raft.LastIndex() > p.nudger.idx.Load() {
			continue
		}
		// The barrier's outcome does not matter; it only carries the
		// commit index to the followers.
		_ = p.raft.Barrier(0)
	}
}
