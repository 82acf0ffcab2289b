package raft

import (
	"context"
	"errors"
	"fmt"

	"github.com/kode4food/timebox"
)

// nodeSentinels are the errors a node's reply carries by code, beyond
// those NodeReply.set classes itself, so that the parent's errors.Is
// recognises them: the feed's, and ErrUnavailable (transient).
var nodeSentinels = map[string]error{
	"unavailable":        timebox.ErrUnavailable,
	"lease-held":         timebox.ErrLeaseHeld,
	"lease-lost":         timebox.ErrLeaseLost,
	"consumer-not-found": timebox.ErrConsumerNotFound,
	"partition-mismatch": timebox.ErrPartitionMismatch,
}

var (
	_ timebox.Feeder          = (*procBackend)(nil)
	_ timebox.ConsumerBackend = (*procBackend)(nil)
)

func (s *NodeService) ReadFeed(a *NodeArgs, r *NodeReply) error {
	ctx, cancel := a.context()
	defer cancel()
	var err error
	r.Events, err = s.p.ReadFeed(ctx, a.Feed)
	r.set(err)
	return nil
}

func (s *NodeService) ClaimPartition(a *NodeArgs, r *NodeReply) error {
	ctx, cancel := a.context()
	defer cancel()
	var err error
	r.Claim, err = s.p.ClaimPartition(ctx, a.Lease)
	r.set(err)
	return nil
}

func (s *NodeService) CommitPartition(a *NodeArgs, r *NodeReply) error {
	ctx, cancel := a.context()
	defer cancel()
	r.set(s.p.CommitPartition(ctx, a.Lease, a.Pos))
	return nil
}

func (s *NodeService) ReleasePartition(a *NodeArgs, r *NodeReply) error {
	ctx, cancel := a.context()
	defer cancel()
	r.set(s.p.ReleasePartition(ctx, a.Lease))
	return nil
}

func (s *NodeService) ListConsumers(a *NodeArgs, r *NodeReply) error {
	ctx, cancel := a.context()
	defer cancel()
	var err error
	r.Consumers, err = s.p.ListConsumers(ctx)
	r.set(err)
	return nil
}

func (s *NodeService) ResetConsumer(a *NodeArgs, r *NodeReply) error {
	ctx, cancel := a.context()
	defer cancel()
	r.set(s.p.ResetConsumer(ctx, a.Name, a.Pos))
	return nil
}

func (s *NodeService) DeleteConsumer(a *NodeArgs, r *NodeReply) error {
	ctx, cancel := a.context()
	defer cancel()
	r.set(s.p.DeleteConsumer(ctx, a.Name))
	return nil
}

// feed runs a feed call on the node. A node process that cannot be
// reached is transient for the feed, so that a consumer in the parent
// waits for its node to come back rather than ending.
func (b *procBackend) feed(ctx context.Context, method string, a *NodeArgs) (*NodeReply, error) {
	r, err := b.do(ctx, method, a)
	if errors.Is(err, errProcDown) {
		return nil, fmt.Errorf("%w: %v", timebox.ErrUnavailable, err)
	}
	return r, err
}

// Wait is a timeout of its own on the node, so the call's deadline
// covers it.
func (b *procBackend) ReadFeed(
	ctx context.Context, req timebox.FeedRequest,
) ([]*timebox.Event, error) {
	a := &NodeArgs{Feed: req}
	if _, ok := ctx.Deadline(); !ok {
		a.Timeout = req.Wait + waitLong
	}
	r, err := b.feed(ctx, "ReadFeed", a)
	if err != nil {
		return nil, err
	}
	return r.Events, nil
}

func (b *procBackend) ClaimPartition(
	ctx context.Context, l timebox.Lease,
) (timebox.Claim, error) {
	r, err := b.feed(ctx, "ClaimPartition", &NodeArgs{Lease: l})
	if err != nil {
		return timebox.Claim{}, err
	}
	return r.Claim, nil
}

func (b *procBackend) CommitPartition(
	ctx context.Context, l timebox.Lease, pos timebox.Position,
) error {
	_, err := b.feed(ctx, "CommitPartition", &NodeArgs{Lease: l, Pos: pos})
	return err
}

func (b *procBackend) ReleasePartition(ctx context.Context, l timebox.Lease) error {
	_, err := b.feed(ctx, "ReleasePartition", &NodeArgs{Lease: l})
	return err
}

func (b *procBackend) ListConsumers(ctx context.Context) ([]timebox.ConsumerInfo, error) {
	r, err := b.feed(ctx, "ListConsumers", &NodeArgs{})
	if err != nil {
		return nil, err
	}
	return r.Consumers, nil
}

func (b *procBackend) ResetConsumer(
	ctx context.Context, name string, pos timebox.Position,
) error {
	_, err := b.feed(ctx, "ResetConsumer", &NodeArgs{Name: name, Pos: pos})
	return err
}

func (b *procBackend) DeleteConsumer(ctx context.Context, name string) error {
	_, err := b.feed(ctx, "DeleteConsumer", &NodeArgs{Name: name})
	return err
}
