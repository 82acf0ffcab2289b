package raft

import (
	"context"
	"fmt"

	"github.com/kode4food/timebox"
)

var (
	_ timebox.Feeder          = (*nodeBackend)(nil)
	_ timebox.ConsumerBackend = (*nodeBackend)(nil)
)

// errFeedNodeDown: a feed call on a slot with no node running is
// transient, so that a process's consumer waits for its node to come
// back, as a process waits for its local node.
var errFeedNodeDown = fmt.Errorf("%w: node is down", timebox.ErrUnavailable)

// feedNode returns the node in b's slot, or errFeedNodeDown.
func (b *nodeBackend) feedNode() (*Persistence, error) {
	if p := b.slot.Load(); p != nil {
		return p, nil
	}
	return nil, errFeedNodeDown
}

func (b *nodeBackend) ReadFeed(
	ctx context.Context, req timebox.FeedRequest,
) ([]*timebox.Event, error) {
	p, err := b.feedNode()
	if err != nil {
		return nil, err
	}
	return p.ReadFeed(ctx, req)
}

func (b *nodeBackend) ClaimPartition(
	ctx context.Context, l timebox.Lease,
) (timebox.Claim, error) {
	p, err := b.feedNode()
	if err != nil {
		return timebox.Claim{}, err
	}
	return p.ClaimPartition(ctx, l)
}

func (b *nodeBackend) CommitPartition(
	ctx context.Context, l timebox.Lease, pos timebox.Position,
) error {
	p, err := b.feedNode()
	if err != nil {
		return err
	}
	return p.CommitPartition(ctx, l, pos)
}

func (b *nodeBackend) ReleasePartition(ctx context.Context, l timebox.Lease) error {
	p, err := b.feedNode()
	if err != nil {
		return err
	}
	return p.ReleasePartition(ctx, l)
}

func (b *nodeBackend) ListConsumers(ctx context.Context) ([]timebox.ConsumerInfo, error) {
	p, err := b.feedNode()
	if err != nil {
		return nil, err
	}
	return p.ListConsumers(ctx)
}

func (b *nodeBackend) ResetConsumer(
	ctx context.Context, name string, pos timebox.Position,
) error {
	p, err := b.feedNode()
	if err != nil {
		return err
	}
	return p.ResetConsumer(ctx, name, pos)
}

func (b *nodeBackend) DeleteConsumer(ctx context.Context, name string) error {
	p, err := b.feedNode()
	if err != nil {
		return err
	}
	return p.DeleteConsumer(ctx, name)
}
