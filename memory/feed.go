package memory

import (
	"context"
	"time"

	"github.com/kode4food/timebox"
)

// partition is one partition of a durable consumer, with the consumer's
// epoch (see timebox.Claim).
type partition struct {
	checkpoint timebox.Position
	owner      string
	expires    time.Time
	epoch      uint64
}

// ReadFeed returns copies of up to req.Limit events after req.After. The
// feed holds the stored events themselves, appended under the write lock
// with the rest of the append, so it is gap-free; trims and archives
// remove events from their aggregates, never from the feed. With
// req.Wait it waits for the next append, req.Wait, ctx or Close.
func (p *Persistence) ReadFeed(
	ctx context.Context, req timebox.FeedRequest,
) ([]*timebox.Event, error) {
	var timeout <-chan time.Time
	for {
		var res []*timebox.Event
		var wake chan struct{}
		err := p.read(func() error {
			res = p.feedAfter(req.After, req.Limit)
			wake = p.feedNotify
			return nil
		})
		if err != nil || len(res) > 0 || req.Wait <= 0 {
			return res, err
		}
		if timeout == nil {
			t := time.NewTimer(req.Wait)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-wake:
		case <-timeout:
			return res, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-p.done:
			return nil, timebox.ErrClosed
		}
	}
}

// feedChunk is how many commits one chunk of a feedLog holds.
const feedChunk = 1 << 12

// feedLog holds the events of every commit, commit c's at index c-1. It
// grows a chunk at a time, so an append never copies the commits before
// it (a slice of them would be copied whole, under the write lock, each
// time it outgrew its capacity).
type feedLog struct {
	chunks [][][]timebox.Event
	n      uint64
}

// len returns the number of commits.
func (f *feedLog) len() uint64 {
	return f.n
}

// commit returns the events of commit c, 1 ≤ c ≤ len().
func (f *feedLog) commit(c uint64) []timebox.Event {
	i := c - 1
	return f.chunks[i/feedChunk][i%feedChunk]
}

// add appends a commit's events.
func (f *feedLog) add(block []timebox.Event) {
	if f.n%feedChunk == 0 {
		f.chunks = append(f.chunks, make([][]timebox.Event, 0, feedChunk))
	}
	last := len(f.chunks) - 1
	f.chunks[last] = append(f.chunks[last], block)
	f.n++
}

// feedAfter returns copies of up to limit events after pos, one copy of
// each commit's aggregate ID shared by its events.
func (p *Persistence) feedAfter(pos timebox.Position, limit int) []*timebox.Event {
	c, off := pos.Commit, pos.Offset+1
	if c == 0 || off == 0 { // before commit 1, or past pos.Commit's last
		c, off = c+1, 0
	}
	res := []*timebox.Event{}
	if c == 0 {
		return res // after the largest Position there is
	}
	for ; c <= p.feed.len() && len(res) < limit; c, off = c+1, 0 {
		block := p.feed.commit(c)
		if off >= uint64(len(block)) {
			continue
		}
		block = block[off:min(uint64(len(block)), off+uint64(limit-len(res)))]
		evs := make([]*timebox.Event, len(block))
		for i := range block {
			evs[i] = &block[i]
		}
		cp := copyEvents(evs, block[0].AggregateID.Clone())
		for i := range cp {
			cp[i].Position = block[i].Position
		}
		res = append(res, cp...)
	}
	return res
}

// ClaimPartition implements timebox.ConsumerBackend; a ctx already done fails it
// with ctx's error, writing nothing.
func (p *Persistence) ClaimPartition(
	ctx context.Context, l timebox.Lease,
) (timebox.Claim, error) {
	if err := ctx.Err(); err != nil {
		return timebox.Claim{}, err
	}
	var c timebox.Claim
	err := p.write(func() error {
		parts, ok := p.consumers[l.Consumer]
		if !ok {
			parts = make([]partition, l.Partitions)
			epoch := p.newEpoch()
			for i := range parts {
				parts[i].epoch = epoch
			}
			p.consumers[l.Consumer] = parts
		}
		if len(parts) != l.Partitions {
			return timebox.ErrPartitionMismatch
		}
		pt := &parts[l.Partition]
		now := time.Now()
		if pt.owner != "" && pt.owner != l.Owner && now.Before(pt.expires) {
			return timebox.ErrLeaseHeld
		}
		pt.owner, pt.expires = l.Owner, now.Add(l.TTL)
		c = timebox.Claim{Checkpoint: pt.checkpoint, Epoch: pt.epoch}
		return nil
	})
	return c, err
}

// newEpoch returns an epoch no consumer of p has had; p.mu is held.
func (p *Persistence) newEpoch() uint64 {
	p.epochs++
	return p.epochs
}

// CommitPartition implements timebox.ConsumerBackend; a ctx already done fails it
// with ctx's error, writing nothing.
func (p *Persistence) CommitPartition(
	ctx context.Context, l timebox.Lease, pos timebox.Position,
) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return p.write(func() error {
		pt := p.partition(l)
		if pt == nil || pt.owner != l.Owner {
			return timebox.ErrLeaseLost
		}
		pt.checkpoint, pt.expires = pos, time.Now().Add(l.TTL)
		return nil
	})
}

// ReleasePartition implements timebox.ConsumerBackend.
func (p *Persistence) ReleasePartition(_ context.Context, l timebox.Lease) error {
	return p.write(func() error {
		if pt := p.partition(l); pt != nil && pt.owner == l.Owner {
			pt.owner, pt.expires = "", time.Time{}
		}
		return nil
	})
}

// partition returns l's partition, or nil if it does not exist.
func (p *Persistence) partition(l timebox.Lease) *partition {
	parts := p.consumers[l.Consumer]
	if len(parts) != l.Partitions {
		return nil
	}
	return &parts[l.Partition]
}

// ListConsumers implements timebox.ConsumerBackend.
func (p *Persistence) ListConsumers(context.Context) ([]timebox.ConsumerInfo, error) {
	var res []timebox.ConsumerInfo
	err := p.read(func() error {
		for name, parts := range p.consumers {
			info := timebox.ConsumerInfo{Name: name}
			for i, pt := range parts {
				info.Partitions = append(info.Partitions, timebox.PartitionInfo{
					Partition: i, Checkpoint: pt.checkpoint,
					Owner: pt.owner, Expires: pt.expires,
				})
			}
			res = append(res, info)
		}
		return nil
	})
	return res, err
}

// ResetConsumer implements timebox.ConsumerBackend; a ctx already done fails it
// with ctx's error, writing nothing.
func (p *Persistence) ResetConsumer(
	ctx context.Context, name string, pos timebox.Position,
) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return p.write(func() error {
		parts, ok := p.consumers[name]
		if !ok {
			return timebox.ErrConsumerNotFound
		}
		epoch := p.newEpoch()
		for i := range parts {
			parts[i] = partition{checkpoint: pos, epoch: epoch}
		}
		return nil
	})
}

// DeleteConsumer implements timebox.ConsumerBackend; a ctx already done fails it
// with ctx's error, writing nothing.
func (p *Persistence) DeleteConsumer(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return p.write(func() error {
		if _, ok := p.consumers[name]; !ok {
			return timebox.ErrConsumerNotFound
		}
		delete(p.consumers, name)
		return nil
	})
}
