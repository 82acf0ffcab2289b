package postgres

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kode4food/timebox"
)

// Statuses returned by timebox_consumer_claim (schema.sql).
const (
	claimGranted  = 0
	claimHeld     = 1
	claimMismatch = 2
)

// ClaimPartition claims l's partition with one call of
// timebox_consumer_claim (schema.sql), which creates the consumer's rows
// and takes their epoch on its first claim, times the lease by the
// server's clock, and reads the checkpoint and the epoch from the row it
// leases, so both are from one moment. It returns timebox.ErrLeaseHeld,
// timebox.ErrPartitionMismatch, or the error met.
func (p *Persistence) ClaimPartition(
	ctx context.Context, l timebox.Lease,
) (timebox.Claim, error) {
	if err := p.checkOpen(); err != nil {
		return timebox.Claim{}, err
	}
	var status int32
	var xid, off, epoch *int64
	err := p.pool.QueryRow(ctx, consumerClaimSQL, p.ns, l.Consumer,
		int32(l.Partition), int32(l.Partitions), l.Owner, l.TTL.Milliseconds(),
	).Scan(&status, &xid, &off, &epoch)
	if err != nil {
		return timebox.Claim{}, p.writeFailed(ctx, "claim consumer", err)
	}
	switch status {
	case claimGranted:
		return timebox.Claim{
			Checkpoint: timebox.Position{Commit: uint64(*xid), Offset: uint64(*off)},
			Epoch:      uint64(*epoch),
		}, nil
	case claimMismatch:
		return timebox.Claim{}, fmt.Errorf("postgres: consumer %q: %w",
			l.Consumer, timebox.ErrPartitionMismatch)
	default:
		return timebox.Claim{}, fmt.Errorf("postgres: consumer %q partition %d: %w",
			l.Consumer, l.Partition, timebox.ErrLeaseHeld)
	}
}

// CommitPartition moves the partition's checkpoint to pos and extends the
// lease with one UPDATE conditional on l.Owner holding it; otherwise it
// returns timebox.ErrLeaseLost.
func (p *Persistence) CommitPartition(
	ctx context.Context, l timebox.Lease, pos timebox.Position,
) error {
	if err := p.checkOpen(); err != nil {
		return err
	}
	xid, off := checkpointArgs(pos)
	tag, err := p.pool.Exec(ctx, consumerCommitSQL, p.ns, l.Consumer,
		int32(l.Partition), l.Owner, xid, off, l.TTL.Milliseconds())
	if err != nil {
		return p.writeFailed(ctx, "commit consumer", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: consumer %q partition %d: %w",
			l.Consumer, l.Partition, timebox.ErrLeaseLost)
	}
	return nil
}

// ReleasePartition ends l.Owner's lease with one conditional UPDATE.
func (p *Persistence) ReleasePartition(ctx context.Context, l timebox.Lease) error {
	if err := p.checkOpen(); err != nil {
		return err
	}
	_, err := p.pool.Exec(ctx, consumerReleaseSQL, p.ns, l.Consumer,
		int32(l.Partition), l.Owner)
	if err != nil {
		return p.writeFailed(ctx, "release consumer", err)
	}
	return nil
}

// ListConsumers returns the Prefix's consumers, read by one statement,
// planned for its argument each time as ResetConsumer's is.
func (p *Persistence) ListConsumers(ctx context.Context) ([]timebox.ConsumerInfo, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	rows, _ := p.pool.Query(ctx, consumerListSQL, pgx.QueryExecModeExec, p.ns)
	var res []timebox.ConsumerInfo
	var name, owner string
	var part int32
	var xid, off int64
	var expires *time.Time
	_, err := pgx.ForEachRow(rows, []any{&name, &part, &xid, &off, &owner, &expires},
		func() error {
			if n := len(res); n == 0 || res[n-1].Name != name {
				res = append(res, timebox.ConsumerInfo{Name: name})
			}
			pi := timebox.PartitionInfo{
				Partition:  int(part),
				Checkpoint: timebox.Position{Commit: uint64(xid), Offset: uint64(off)},
				Owner:      owner,
			}
			if expires != nil {
				pi.Expires = *expires
			}
			c := &res[len(res)-1]
			c.Partitions = append(c.Partitions, pi)
			return nil
		})
	if err != nil {
		return nil, p.fail(ctx, "list consumers", err)
	}
	return res, nil
}

// ResetConsumer moves every partition to pos, gives them one new epoch
// (from timebox_consumer_epoch) and ends every lease with one UPDATE;
// timebox.ErrConsumerNotFound when it matched no row. Like
// DeleteConsumer, a rare call, it is planned for its arguments each time
// (a consumer's rows are a range of the key, which a generic plan made
// while the table was small might scan whole).
func (p *Persistence) ResetConsumer(
	ctx context.Context, name string, pos timebox.Position,
) error {
	if err := p.checkOpen(); err != nil {
		return err
	}
	xid, off := checkpointArgs(pos)
	tag, err := p.pool.Exec(ctx, consumerResetSQL, pgx.QueryExecModeExec,
		p.ns, name, xid, off)
	return p.consumerChanged(ctx, "reset consumer", name, tag.RowsAffected(), err)
}

// DeleteConsumer deletes the consumer's rows with one DELETE;
// timebox.ErrConsumerNotFound when there were none.
func (p *Persistence) DeleteConsumer(ctx context.Context, name string) error {
	if err := p.checkOpen(); err != nil {
		return err
	}
	tag, err := p.pool.Exec(ctx, consumerDeleteSQL, pgx.QueryExecModeExec, p.ns, name)
	return p.consumerChanged(ctx, "delete consumer", name, tag.RowsAffected(), err)
}

func (p *Persistence) consumerChanged(
	ctx context.Context, op, name string, n int64, err error,
) error {
	switch {
	case err != nil:
		return p.writeFailed(ctx, op, err)
	case n == 0:
		return fmt.Errorf("postgres: %s %q: %w", op, name, timebox.ErrConsumerNotFound)
	}
	return nil
}

// checkpointArgs returns pos as the bigint columns of timebox_consumers
// hold it; a Commit or Offset above MaxInt64 (no event has one) is
// clamped.
func checkpointArgs(pos timebox.Position) (int64, int64) {
	return int64(min(pos.Commit, math.MaxInt64)),
		int64(min(pos.Offset, math.MaxInt64))
}
