package raft

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	hraft "github.com/hashicorp/raft"
	"go.etcd.io/bbolt"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/codec"
)

var (
	// ErrNoLeader means no leader could be reached in time. Nothing was
	// written; the call is safe to retry once the cluster has a leader. It
	// matches timebox.ErrUnavailable, so the Store retries it.
	ErrNoLeader = fmt.Errorf("raft: no leader available: %w", timebox.ErrUnavailable)

	// errNotLeader marks failures where nothing was done because the node
	// asked was not the leader; they are retried against the new one.
	errNotLeader = errors.New("raft: not the leader")

	// ErrWriteTooLarge means an append or snapshot encodes to a command of
	// 256 MiB or more, the most one log entry (and a write forwarded from
	// a follower) may hold. Nothing was sent.
	ErrWriteTooLarge = errors.New("raft: write too large for one log entry (256 MiB)")
)

// Append commits req through the leader and returns once this node has
// applied it, so its reads reflect the write. The expected sequence is
// checked inside the state machine. An empty batch adds no log entry: it
// is checked against this node's state once that has caught up with the
// leader's log as of the call. Errors: *timebox.VersionConflictError,
// timebox.ErrInvalidAggregateID or ErrIndexTooLong (an encoded ID, status
// or label too long for a key of the state file), ErrWriteTooLarge,
// timebox.ErrUnknownOutcome (leadership lost mid-commit, the leader
// unreachable after the write was sent, or this node's state file failing
// while the write waited to be applied, with ErrDiskFailure too),
// ErrDiskFailure alone (this node cannot write its disk, see Err: nothing
// was written), ErrNoLeader, timebox.ErrClosed, or ctx's error.
func (p *Persistence) Append(ctx context.Context, req timebox.AppendRequest) error {
	if err := p.checkOpen(); err != nil {
		return err
	}
	if len(req.Events) == 0 {
		return p.checkHead(ctx, req)
	}
	if err := checkKeys(codec.EncodeID(req.ID), req.Index); err != nil {
		return err
	}
	return p.propose(ctx, encodeAppend(req), req.ID)
}

// SaveSnapshot commits req through the leader; see Append for when it
// returns and its errors (it never conflicts). An IfHead snapshot the
// state machine did not store returns timebox.ErrSnapshotSkipped.
func (p *Persistence) SaveSnapshot(ctx context.Context, req timebox.SnapshotRequest) error {
	if err := p.checkOpen(); err != nil {
		return err
	}
	if err := checkKeys(codec.EncodeID(req.ID), timebox.IndexChange{}); err != nil {
		return err
	}
	return p.propose(ctx, encodeSnapshot(req), req.ID)
}

// checkHead compares req.ExpectedSequence with the head once this node has
// applied everything the leader had when asked.
func (p *Persistence) checkHead(ctx context.Context, req timebox.AppendRequest) error {
	err := p.retry(ctx, p.catchUp(ctx))
	if err != nil {
		return err
	}
	key := codec.EncodeID(req.ID)
	return p.fsm.view(func(tx *bbolt.Tx) error {
		rec, _ := getAgg(tx, key)
		if rec.head == req.ExpectedSequence {
			return nil
		}
		conflict, err := newConflict(tx, key, req.ExpectedSequence, rec.head)
		if err != nil {
			return err
		}
		return conflict
	})
}

// catchUp returns a step for retry that waits until this node has applied
// everything the leader had committed when the step began. If the term
// changes meanwhile, the entries the read index counted on may have been
// dropped, so the step fails with errNotLeader and retry asks again.
func (p *Persistence) catchUp(ctx context.Context) func() error {
	return func() error {
		term := p.raft.CurrentTerm()
		idx, err := p.readIndex(ctx)
		if err != nil {
			return err
		}
		return p.waitApplied(ctx, idx, term)
	}
}

// propose commits cmd and waits for it to be applied here.
// While this node's disk fails (Err), it refuses at once with that error:
// it could not store the entry, nor apply it to answer.
func (p *Persistence) propose(ctx context.Context, cmd []byte, id timebox.AggregateID) error {
	_, err := p.proposeResult(ctx, cmd, id)
	return err
}

// proposeResult is propose returning the state machine's response too
// (nil unless the command answers one, as consumer commands do).
func (p *Persistence) proposeResult(
	ctx context.Context, cmd []byte, id timebox.AggregateID,
) (any, error) {
	if len(cmd) >= maxFrame {
		return nil, fmt.Errorf("%w: %d bytes encoded", ErrWriteTooLarge, len(cmd))
	}
	var res any
	err := p.retry(ctx, func() error {
		if err := p.Err(); err != nil {
			return err
		}
		var err error
		res, err = p.proposeOnce(ctx, cmd, id)
		return err
	})
	return res, err
}

// retry runs fn until it fails with something other than errNotLeader,
// waiting a little longer each time, up to tuning.leaderWait.
func (p *Persistence) retry(ctx context.Context, fn func() error) error {
	deadline := time.Now().Add(p.tune.leaderWait)
	wait := time.Millisecond
	for {
		err := fn()
		if !errors.Is(err, errNotLeader) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: %w", ErrNoLeader, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-p.done:
			t.Stop()
			return timebox.ErrClosed
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}

func (p *Persistence) proposeOnce(
	ctx context.Context, cmd []byte, id timebox.AggregateID,
) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err // nothing sent yet: a late command is never committed
	}
	leader := p.Leader()
	switch {
	case leader.ID == p.cfg.LocalID:
		_, resp, err := p.applyLocal(cmd)
		if err != nil {
			return nil, err
		}
		return resp, responseError(resp)
	case leader.Address == "":
		return nil, errNotLeader
	}
	code, body, sent, err := p.fwd.call(ctx, leader.Address, fwdApply, cmd)
	if err != nil {
		return nil, p.forwardError(ctx, sent, err)
	}
	switch code {
	case codeOK:
		if len(body) != 8 {
			return nil, fmt.Errorf("%w: bad reply from leader", timebox.ErrUnknownOutcome)
		}
		return nil, p.waitCommitted(ctx, binary.BigEndian.Uint64(body))
	case codeResult:
		res, err := decodeResult(body[min(8, len(body)):])
		if len(body) < 8 || err != nil {
			return nil, fmt.Errorf("%w: bad reply from leader", timebox.ErrUnknownOutcome)
		}
		if err := p.waitCommitted(ctx, binary.BigEndian.Uint64(body)); err != nil {
			return nil, err
		}
		return res, res.err
	case codeConflict:
		conflict, err := decodeConflict(body, id)
		if err != nil {
			return nil, fmt.Errorf("raft: conflict from leader: %w", err)
		}
		return nil, conflict
	case codeNotLeader:
		return nil, errNotLeader
	case codeUnknown:
		return nil, fmt.Errorf("%w: leader: %s", timebox.ErrUnknownOutcome, body)
	default:
		return nil, fmt.Errorf("raft: leader: %s", body)
	}
}

// forwardError classifies a failed forwarding call: one that cannot have
// reached the leader is retried, one that may have is of unknown outcome.
func (p *Persistence) forwardError(ctx context.Context, sent bool, err error) error {
	switch {
	case p.closed.Load() && sent:
		return fmt.Errorf("%w: %w", timebox.ErrClosed, timebox.ErrUnknownOutcome)
	case p.closed.Load():
		return timebox.ErrClosed
	case !sent:
		return fmt.Errorf("%w: %w", errNotLeader, err)
	case ctx.Err() != nil:
		return fmt.Errorf("%w: %w", timebox.ErrUnknownOutcome, ctx.Err())
	default:
		return fmt.Errorf("%w: forward to leader: %w", timebox.ErrUnknownOutcome, err)
	}
}

// waitCommitted waits until the entry the leader committed at idx is
// applied here.
func (p *Persistence) waitCommitted(ctx context.Context, idx uint64) error {
	err := p.waitApplied(ctx, idx, 0)
	if err == nil {
		return nil
	}
	return fmt.Errorf(
		"%w: committed at index %d but not yet applied on this node: %w",
		timebox.ErrUnknownOutcome, idx, err,
	)
}

// applyLocal applies cmd on this node, which must be the leader, and
// returns its index and the state machine's response.
//
// The future is answered once the entry is applied here. While this
// node's state file cannot be written the entry waits in the log, so the
// call returns at once with ErrUnknownOutcome and ErrDiskFailure instead
// (the entry is applied when the disk recovers, if it was committed); a
// goroutine keeps the call counted for Close until the future is answered.
func (p *Persistence) applyLocal(cmd []byte) (uint64, any, error) {
	var f hraft.ApplyFuture
	res := make(chan error, 1)
	err := p.raftCall(func() error {
		f = p.raft.Apply(cmd, 0)
		p.calls.Add(1)
		go func() {
			defer p.calls.Done()
			res <- f.Error()
		}()
		return nil
	})
	if err == nil {
		select {
		case err = <-res:
		case <-p.health.stateFailing():
			return 0, nil, fmt.Errorf("%w: %w", timebox.ErrUnknownOutcome, p.Err())
		}
	}
	switch {
	case errors.Is(err, timebox.ErrClosed):
		return 0, nil, err
	case err != nil:
		return 0, nil, p.applyError(err)
	}
	return f.Index(), f.Response(), nil
}

func (p *Persistence) applyError(err error) error {
	switch {
	case errors.Is(err, hraft.ErrNotLeader),
		errors.Is(err, hraft.ErrLeadershipTransferInProgress):
		return fmt.Errorf("%w: %w", errNotLeader, err)
	case errors.Is(err, ErrDiskFailure):
		// The leader could not store the entry: nothing was written, and
		// it stepped down; a forwarding follower asks the next leader.
		return fmt.Errorf("%w: %w", errNotLeader, err)
	case errors.Is(err, hraft.ErrRaftShutdown) && p.closed.Load():
		return fmt.Errorf("%w: %w", timebox.ErrClosed, timebox.ErrUnknownOutcome)
	default:
		// ErrLeadershipLost and the like: the entry may still commit.
		return fmt.Errorf("%w: %w", timebox.ErrUnknownOutcome, err)
	}
}

func responseError(resp any) error {
	switch r := resp.(type) {
	case nil:
		return nil
	case *timebox.VersionConflictError:
		return r
	case *consumerResult:
		return r.err
	case error:
		return r
	default:
		return fmt.Errorf("raft: unexpected response %T", resp)
	}
}

// readIndex returns a log index at least as high as every entry committed
// when the call began, as the leader confirms it.
func (p *Persistence) readIndex(ctx context.Context) (uint64, error) {
	leader := p.Leader()
	switch {
	case leader.ID == p.cfg.LocalID:
		return p.readIndexLocal()
	case leader.Address == "":
		return 0, errNotLeader
	}
	code, body, _, err := p.fwd.call(ctx, leader.Address, fwdReadIndex, nil)
	if err != nil {
		if p.closed.Load() {
			return 0, timebox.ErrClosed
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		// A read index writes nothing, so any failure may be retried.
		return 0, fmt.Errorf("%w: %w", errNotLeader, err)
	}
	switch {
	case code == codeOK && len(body) == 8:
		return binary.BigEndian.Uint64(body), nil
	case code == codeNotLeader || code == codeUnknown:
		return 0, errNotLeader
	default:
		return 0, fmt.Errorf("raft: leader: %s", body)
	}
}

// readIndexLocal is readIndex on the leader: its last index, taken before
// it confirms with a quorum that it still leads, covers every entry
// committed before the call.
func (p *Persistence) readIndexLocal() (uint64, error) {
	idx := p.raft.LastIndex()
	err := p.raftCall(func() error {
		return p.raft.VerifyLeader().Error()
	})
	switch {
	case err == nil:
		return idx, nil
	case errors.Is(err, timebox.ErrClosed),
		errors.Is(err, hraft.ErrRaftShutdown) && p.closed.Load():
		return 0, timebox.ErrClosed
	default:
		return 0, fmt.Errorf("%w: %w", errNotLeader, err)
	}
}

// waitApplied waits until this node's state reflects every log entry up
// to idx. With term non-zero, it gives up with errNotLeader once the term
// is no longer term; it gives up with ErrDiskFailure while this node's
// disk fails (Err).
func (p *Persistence) waitApplied(ctx context.Context, idx, term uint64) error {
	var tick <-chan time.Time
	for {
		ch := p.fsm.changed()
		if p.appliedThrough(idx) {
			return nil
		}
		if tick == nil {
			// Raft applies entries the state machine never sees (no-ops,
			// configuration) without telling it; look again now and then.
			t := time.NewTicker(2 * time.Millisecond)
			defer t.Stop()
			tick = t.C
		}
		if term != 0 && p.raft.CurrentTerm() != term {
			return errNotLeader
		}
		if err := p.Err(); err != nil {
			// This node cannot store or apply entries until its disk
			// recovers.
			return err
		}
		select {
		case <-ch:
		case <-tick:
		case <-ctx.Done():
			return ctx.Err()
		case <-p.done:
			return timebox.ErrClosed
		}
	}
}

// appliedThrough reports whether the state holds every entry up to idx:
// either the state machine has applied idx, or Raft has applied it and no
// command between the two is still on its way to the state machine.
func (p *Persistence) appliedThrough(idx uint64) bool {
	applied := p.fsm.applied.Load()
	if applied >= idx {
		return true
	}
	if p.raft.AppliedIndex() < idx {
		return false
	}
	for i := applied + 1; i <= idx; i++ {
		var l hraft.Log
		if err := p.logs.GetLog(i, &l); err == nil && l.Type == hraft.LogCommand {
			return false
		}
	}
	return true
}
