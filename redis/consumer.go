package redis

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/kode4food/timebox"
)

// The durable consumers' checkpoints and leases: one hash per consumer
// and a sorted set of their names, in the store's slot, each operation
// one run of consumer.lua, timed by the server's clock (see DESIGN.md,
// Feed). Claim, commit, release and reset are idempotent for their
// caller, so they are sent as reads: go-redis may resend them, and a
// connection that fails gives an error matching timebox.ErrUnavailable.
// Delete is not (a second copy finds nothing), so it is sent at most once
// and a lost reply gives timebox.ErrUnknownOutcome.

// ClaimPartition implements timebox.ConsumerBackend: one run of
// consumer.lua checks the lease and the partition count, takes the lease
// and reads the checkpoint and the epoch. Errors: timebox.ErrLeaseHeld, timebox.ErrPartitionMismatch,
// timebox.ErrClosed, or the server's or connection's error.
func (p *Persistence) ClaimPartition(
	ctx context.Context, l timebox.Lease,
) (timebox.Claim, error) {
	res, err := p.consumerOp(ctx, l.Consumer, false, "claim",
		l.Partition, l.Partitions, l.Owner, leaseMillis(l.TTL))
	if err != nil {
		return timebox.Claim{}, err
	}
	r, _ := res.([]any)
	code, _ := first(r).(int64)
	switch {
	case code == 1 && len(r) == 3:
		s, _ := r[1].(string)
		epoch, ok := r[2].(int64)
		pos, err := timebox.ParsePosition(s)
		if err != nil || !ok || epoch < 0 {
			break
		}
		return timebox.Claim{Checkpoint: pos, Epoch: uint64(epoch)}, nil
	case code == 0:
		return timebox.Claim{}, fmt.Errorf("redis: consumer %q partition %d: %w",
			l.Consumer, l.Partition, timebox.ErrLeaseHeld)
	case code == 2 && len(r) == 2:
		return timebox.Claim{}, fmt.Errorf("redis: consumer %q has %v partitions, not %d: %w",
			l.Consumer, r[1], l.Partitions, timebox.ErrPartitionMismatch)
	}
	return timebox.Claim{}, fmt.Errorf("redis: claim: unexpected reply %v", res)
}

// CommitPartition implements timebox.ConsumerBackend. Errors:
// timebox.ErrLeaseLost, timebox.ErrClosed, or the server's or
// connection's error.
func (p *Persistence) CommitPartition(
	ctx context.Context, l timebox.Lease, pos timebox.Position,
) error {
	res, err := p.consumerOp(ctx, l.Consumer, false, "commit",
		l.Partition, l.Partitions, l.Owner, leaseMillis(l.TTL), pos.String())
	if err != nil {
		return err
	}
	if res != int64(1) {
		return fmt.Errorf("redis: consumer %q partition %d: %w",
			l.Consumer, l.Partition, timebox.ErrLeaseLost)
	}
	return nil
}

// ReleasePartition implements timebox.ConsumerBackend. Errors:
// timebox.ErrClosed, or the server's or connection's error.
func (p *Persistence) ReleasePartition(ctx context.Context, l timebox.Lease) error {
	_, err := p.consumerOp(ctx, l.Consumer, false, "release", l.Partition, l.Owner)
	return err
}

// ResetConsumer implements timebox.ConsumerBackend. Errors:
// timebox.ErrConsumerNotFound, timebox.ErrClosed, or the server's or
// connection's error.
func (p *Persistence) ResetConsumer(
	ctx context.Context, name string, pos timebox.Position,
) error {
	res, err := p.consumerOp(ctx, name, false, "reset", pos.String())
	return notFound(name, res, err)
}

// DeleteConsumer implements timebox.ConsumerBackend. Errors:
// timebox.ErrConsumerNotFound, timebox.ErrUnknownOutcome when the reply
// was lost, timebox.ErrClosed, or the server's or connection's error.
func (p *Persistence) DeleteConsumer(ctx context.Context, name string) error {
	res, err := p.consumerOp(ctx, name, true, "delete")
	return notFound(name, res, err)
}

// ListConsumers implements timebox.ConsumerBackend: the names, then every
// consumer's hash in one pipeline. A consumer deleted in between is left
// out. Errors: timebox.ErrClosed, or the server's or connection's error.
func (p *Persistence) ListConsumers(ctx context.Context) ([]timebox.ConsumerInfo, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	names, err := p.client.ZRange(ctx, p.keys.cons, 0, -1).Result()
	if err != nil || len(names) == 0 {
		return nil, p.readError("list consumers", err)
	}
	pipe := p.client.Pipeline()
	for _, n := range names {
		pipe.HGetAll(ctx, p.keys.consumer(n))
	}
	cmds, err := pipe.Exec(ctx)
	if err != nil {
		return nil, p.readError("list consumers", err)
	}
	res := make([]timebox.ConsumerInfo, 0, len(names))
	for i, c := range cmds {
		fields, err := c.(interface {
			Result() (map[string]string, error)
		}).Result()
		if err != nil {
			return nil, p.readError("list consumers", err)
		}
		if len(fields) == 0 {
			continue
		}
		info, err := parseConsumer(names[i], fields)
		if err != nil {
			return nil, err
		}
		res = append(res, info)
	}
	return res, nil
}

func parseConsumer(member string, fields map[string]string) (timebox.ConsumerInfo, error) {
	name, err := decodeName(member)
	n, err2 := strconv.Atoi(fields["n"])
	if err != nil || err2 != nil || n < 1 {
		return timebox.ConsumerInfo{}, fmt.Errorf("redis: malformed consumer %q", member)
	}
	info := timebox.ConsumerInfo{Name: name, Partitions: make([]timebox.PartitionInfo, n)}
	for i := range info.Partitions {
		pi := &info.Partitions[i]
		pi.Partition = i
		f := strconv.Itoa(i)
		if s, ok := fields["c"+f]; ok {
			if pi.Checkpoint, err = timebox.ParsePosition(s); err != nil {
				return timebox.ConsumerInfo{}, fmt.Errorf("redis: consumer %q: %w", name, err)
			}
		}
		if pi.Owner = fields["o"+f]; pi.Owner != "" {
			ms, err := strconv.ParseInt(fields["x"+f], 10, 64)
			if err != nil {
				return timebox.ConsumerInfo{}, fmt.Errorf("redis: malformed lease of consumer %q", name)
			}
			pi.Expires = time.UnixMilli(ms).UTC()
		}
	}
	return info, nil
}

// consumerOp runs one operation of consumer.lua on consumer name.
func (p *Persistence) consumerOp(
	ctx context.Context, name string, write bool, op string, args ...any,
) (any, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	eid := encodeName(name)
	res, err := p.run(ctx, consumerScript, write,
		[]string{p.keys.consumer(eid), p.keys.cons, p.keys.epochs},
		append([]any{op, eid}, args...)...,
	)
	if write {
		return res, p.writeError(op+" consumer", err)
	}
	return res, p.readError(op+" consumer", err)
}

func notFound(name string, res any, err error) error {
	switch {
	case err != nil:
		return err
	case res != int64(1):
		return fmt.Errorf("redis: consumer %q: %w", name, timebox.ErrConsumerNotFound)
	}
	return nil
}

// leaseMillis is a lease's TTL in whole milliseconds, at least one.
func leaseMillis(d time.Duration) int64 {
	return max(d.Milliseconds(), 1)
}

func first(r []any) any {
	if len(r) == 0 {
		return nil
	}
	return r[0]
}
