package raft

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"github.com/kode4food/timebox"
)

var _ timebox.Archiver = (*Persistence)(nil)

// Archive commits, through the leader, a command that moves id's snapshot,
// events, status and labels into an archive record, atomically in the
// state machine; it returns once this node has applied it, so the record
// is consumable from here at once (from other nodes once they have
// applied it too). Archiving an unknown aggregate does nothing. Errors
// are Append's (bar the conflict).
func (p *Persistence) Archive(ctx context.Context, id timebox.AggregateID) error {
	if err := p.checkOpen(); err != nil {
		return err
	}
	return p.propose(ctx, encodeArchive(id), id)
}

// ConsumeArchive waits until an archive record is free, leases it to this
// call through the leader for Config.ArchiveLease, hands it to handler,
// and acknowledges it (the record is then gone on every node) once the
// handler returns nil. A handler error (or panic) releases the lease, so
// the record is delivered again at once; a consumer or node that dies
// leaves the lease to run out, after which another consumer gets the
// record. Delivery is at least once. It returns handler's error, ctx's
// error while waiting, timebox.ErrClosed when the node closes,
// timebox.ErrArchiveHandlerMissing for a nil handler, an error wrapping
// timebox.ErrArchiveRecordMalformed for a record that does not decode (it
// is acknowledged, so no consumer gets it again, and logged at ERROR), or
// Append's errors for the lease and the acknowledgement (which is sent
// even when ctx has ended meanwhile).
func (p *Persistence) ConsumeArchive(ctx context.Context, handler timebox.ArchiveHandler) error {
	if err := p.checkOpen(); err != nil {
		return err
	}
	if handler == nil {
		return timebox.ErrArchiveHandlerMissing
	}
	token, err := newToken()
	if err != nil {
		return err
	}
	seq, raw, err := p.lease(ctx, token)
	if err != nil {
		return err
	}
	rec, err := decodeArchiveRecord(seq, raw)
	if err != nil {
		// A record that does not decode now never will: acknowledge it,
		// so it blocks no record behind it, and log it.
		p.log.Error("raft: malformed archive record acknowledged; it is not delivered again",
			"record", seq, "bytes", len(raw), "error", err)
		if aerr := p.propose(context.WithoutCancel(ctx), encodeAck(seq), nil); aerr != nil {
			p.release(ctx, seq, token)
			return errors.Join(err, aerr)
		}
		return err
	}
	ok := false
	defer func() {
		if !ok {
			p.release(ctx, seq, token)
		}
	}()
	if err := handler(ctx, rec); err != nil {
		return err
	}
	ok = true
	return p.propose(context.WithoutCancel(ctx), encodeAck(seq), rec.AggregateID)
}

func newToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("raft: consumer token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// release drops token's lease on seq so the record is delivered again.
func (p *Persistence) release(ctx context.Context, seq uint64, token string) {
	err := p.propose(context.WithoutCancel(ctx), encodeRelease(seq, token), nil)
	if err != nil && !errors.Is(err, timebox.ErrClosed) {
		p.log.Warn("raft: release archive lease; the record is delivered again when it ends",
			"record", seq, "error", err)
	}
}

// lease waits until this node's state shows a record free now, asks the
// leader to lease the first free record to token, and returns the record
// token got once this node has applied the lease. It waits again when
// another consumer was first. A lease whose outcome is unknown (a leader
// lost) may still be applied: it waits for this node's state to show
// it, and asks again after leaseRetry without a change, since the request
// may as well be lost, and then nothing else need ever change the state.
// A lease applied twice holds a second record until its lease runs out.
func (p *Persistence) lease(ctx context.Context, token string) (uint64, []byte, error) {
	unknown := false
	for {
		if err := ctx.Err(); err != nil {
			return 0, nil, err
		}
		changed := p.fsm.changed()
		var seq uint64
		var raw []byte
		var held, free bool
		var next time.Time
		err := p.fsm.view(func(tx *bbolt.Tx) error {
			seq, raw, held = leasedBy(tx, token)
			_, free, next = freeRecord(tx, time.Now())
			return nil
		})
		switch {
		case err != nil:
			return 0, nil, err
		case held:
			return seq, raw, nil
		case free && !unknown:
			cmd := encodeLease(token, time.Now(), p.cfg.ArchiveLease)
			err := p.propose(ctx, cmd, nil)
			if errors.Is(err, timebox.ErrUnknownOutcome) && !errors.Is(err, timebox.ErrClosed) {
				unknown = true
				continue
			}
			if err != nil {
				return 0, nil, err
			}
			continue
		case free:
			next = time.Now().Add(leaseRetry)
		}
		unknown = false
		if err := p.waitArchive(ctx, changed, next); err != nil {
			return 0, nil, err
		}
	}
}

// leaseRetry is how long lease waits for a lease of unknown outcome to
// show in the state before it asks again.
const leaseRetry = 500 * time.Millisecond

// waitArchive waits until the state changes, next (if set: the lease
// ending then runs out, or a lease request is due again) passes, ctx ends
// or the node closes.
func (p *Persistence) waitArchive(ctx context.Context, changed <-chan struct{}, next time.Time) error {
	var expire <-chan time.Time
	if !next.IsZero() {
		t := time.NewTimer(time.Until(next) + time.Millisecond)
		defer t.Stop()
		expire = t.C
	}
	select {
	case <-changed:
	case <-expire:
	case <-ctx.Done():
		return ctx.Err()
	case <-p.done:
		return timebox.ErrClosed
	}
	return nil
}
