package raft

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"github.com/kode4food/timebox"
)

var _ timebox.ConsumerBackend = (*Persistence)(nil)

// Durable consumers' checkpoints and leases are replicated state
// (consumer_cmd.go): each of ClaimPartition, CommitPartition,
// ReleasePartition, ResetConsumer and DeleteConsumer is one command
// committed through the leader, like an append, and returns once this node
// has applied it. A lease's times are the calling node's clock, carried in
// the command; clock skew between nodes lengthens or shortens a lease by
// the skew. Their errors are Append's (bar the conflict) and the ones the
// ConsumerBackend doc names; a call whose outcome was unknown is sent
// again (each is idempotent for its owner) until it is known, ctx ends or
// the node closes.

// ClaimPartition leases l's partition to l.Owner for l.TTL and returns
// its checkpoint and the consumer's epoch, the log index of the command
// that created or last reset it (consumer_cmd.go); see
// timebox.ConsumerBackend.
func (p *Persistence) ClaimPartition(
	ctx context.Context, l timebox.Lease,
) (timebox.Claim, error) {
	res, err := p.consumerOp(ctx, consumerCmd{
		op: opClaim, name: l.Consumer, partition: l.Partition,
		partitions: l.Partitions, owner: l.Owner, ttl: l.TTL,
	})
	if err != nil {
		return timebox.Claim{}, err
	}
	return res.claim, nil
}

// CommitPartition sets l's partition's checkpoint to pos and renews the
// lease; see timebox.ConsumerBackend.
func (p *Persistence) CommitPartition(
	ctx context.Context, l timebox.Lease, pos timebox.Position,
) error {
	_, err := p.consumerOp(ctx, consumerCmd{
		op: opCommit, name: l.Consumer, partition: l.Partition,
		partitions: l.Partitions, owner: l.Owner, ttl: l.TTL, pos: pos,
	})
	return err
}

// ReleasePartition ends l.Owner's lease on l's partition; see
// timebox.ConsumerBackend.
func (p *Persistence) ReleasePartition(ctx context.Context, l timebox.Lease) error {
	_, err := p.consumerOp(ctx, consumerCmd{
		op: opUnlease, name: l.Consumer, partition: l.Partition, owner: l.Owner,
	})
	return err
}

// ResetConsumer moves every partition of name to pos and ends its leases;
// see timebox.ConsumerBackend.
func (p *Persistence) ResetConsumer(ctx context.Context, name string, pos timebox.Position) error {
	_, err := p.consumerOp(ctx, consumerCmd{op: opReset, name: name, pos: pos})
	return err
}

// DeleteConsumer removes name's checkpoints and leases; see
// timebox.ConsumerBackend.
func (p *Persistence) DeleteConsumer(ctx context.Context, name string) error {
	_, err := p.consumerOp(ctx, consumerCmd{op: opDelete, name: name})
	return err
}

// ListConsumers reads every consumer from this node's state, which may
// trail the leader's.
func (p *Persistence) ListConsumers(ctx context.Context) ([]timebox.ConsumerInfo, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	var res []timebox.ConsumerInfo
	err := p.fsm.view(func(tx *bbolt.Tx) error {
		var err error
		res, err = listConsumers(tx)
		return err
	})
	return res, err
}

// consumerOp commits c, stamped with this node's clock, and returns its
// result. It sends c again while the outcome is unknown: every consumer
// command repeated by its owner ends as it did the first time, except a
// delete, whose repeat finds the consumer gone (taken for success).
func (p *Persistence) consumerOp(ctx context.Context, c consumerCmd) (*consumerResult, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(p.tune.leaderWait)
	unknown := false
	for {
		c.now = time.Now()
		resp, err := p.proposeResult(ctx, encodeConsumer(c), nil)
		switch {
		case errors.Is(err, timebox.ErrUnknownOutcome) && !errors.Is(err, timebox.ErrClosed) &&
			ctx.Err() == nil && time.Now().Before(deadline):
			unknown = true
			if err := p.pause(ctx, 10*time.Millisecond); err != nil {
				return nil, err
			}
			continue
		case unknown && c.op == opDelete && errors.Is(err, timebox.ErrConsumerNotFound):
			return &consumerResult{}, nil
		case err != nil:
			return nil, err
		}
		res, ok := resp.(*consumerResult)
		if !ok {
			return nil, fmt.Errorf("raft: unexpected response %T", resp)
		}
		return res, nil
	}
}

// pause waits d, or until ctx ends or the node closes.
func (p *Persistence) pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-p.done:
		return timebox.ErrClosed
	}
}
