package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/codec"
)

// archiveChannel is the LISTEN/NOTIFY channel that wakes consumers; the
// payload is the ns whose records changed.
const archiveChannel = "timebox_archive"

// Bounds of the archive listener's reconnect backoff, the longest a
// waiting consumer trusts notifications alone before looking again, and
// the pause before a claim that failed transiently is tried again.
const (
	listenRetryMin = 50 * time.Millisecond
	listenRetryMax = 2 * time.Second
	archiveRecheck = time.Minute
	archiveRetry   = 20 * time.Millisecond
)

var _ timebox.Archiver = (*Persistence)(nil)

// Archive moves id's snapshot, events, status and labels into one record
// of timebox_archive, in one transaction (timebox_archive_aggregate in
// schema.sql), and wakes waiting consumers: the record is consumable when
// Archive returns. An unknown aggregate is a no-op. It returns
// timebox.ErrUnknownOutcome (wrapped) when the call was sent but its
// result lost, timebox.ErrClosed after Close, or the error met.
func (p *Persistence) Archive(ctx context.Context, id timebox.AggregateID) error {
	if err := p.checkOpen(); err != nil {
		return err
	}
	key, err := writeKey(id)
	if err != nil {
		return err
	}
	var moved bool
	err = p.pool.QueryRow(ctx, archiveSQL, p.ns, key).Scan(&moved)
	if err != nil {
		return p.writeFailed(ctx, "archive", err)
	}
	return nil
}

// ConsumeArchive leases the oldest available record of the Prefix, hands
// it to handler, and deletes it once handler returns nil. A lease lasts
// Config.ArchiveLease: while it holds, no other consumer, in this process
// or another, gets the record; a consumer that dies holding it leaves it
// to be redelivered when the lease runs out. A handler error (or panic)
// ends the lease at once, so the next ConsumeArchive gets the record
// again. With no record available it waits, woken by LISTEN/NOTIFY when
// one is archived or released, or when the first lease runs out.
//
// A claim that fails with timebox.ErrUnavailable (a connection lost, a
// statement cancelled by a stray cancel request) is tried again every
// archiveRetry until ctx ends. It returns handler's error,
// ErrArchiveRecordMalformed for a record it cannot decode (the record is
// deleted), an error matching ctx's when ctx ends first, timebox.ErrClosed
// after Close, or the error met.
func (p *Persistence) ConsumeArchive(
	ctx context.Context, handler timebox.ArchiveHandler,
) error {
	if err := p.checkOpen(); err != nil {
		return err
	}
	if handler == nil {
		return timebox.ErrArchiveHandlerMissing
	}
	p.startListener()
	for {
		wake := p.waiter(&p.listen.wake)
		rec, err := p.claimArchive(ctx)
		if errors.Is(err, timebox.ErrUnavailable) {
			// Nothing was handed out (a claim whose reply was lost leaves
			// a lease that runs out on its own): claim again shortly.
			if err := p.await(ctx, "consume archive", wake, archiveRetry); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		if rec != nil {
			return p.handleArchive(ctx, rec, handler)
		}
		if err := p.awaitArchive(ctx, wake); err != nil {
			return err
		}
	}
}

// leasedRecord is an archive record under a lease.
type leasedRecord struct {
	id, lease int64
	rec       *timebox.ArchiveRecord
	err       error // the record could not be decoded
}

// claimArchive leases the next available record, or returns nil.
func (p *Persistence) claimArchive(ctx context.Context) (*leasedRecord, error) {
	var (
		l         leasedRecord
		key       string
		snapSeq   int64
		snap      []byte
		seqs      []int64
		secs      []int64
		nsecs     []int32
		types     [][]byte
		datas     [][]byte
		ids       [][]byte // NULL for records archived before schema 4
		metas     [][]byte
		leaseMsec = p.lease.Milliseconds()
	)
	err := p.pool.QueryRow(ctx, archiveClaimSQL, p.ns, leaseMsec).Scan(
		&l.id, &l.lease, &key, &snapSeq, &snap, &seqs, &secs, &nsecs, &types, &datas,
		&ids, &metas,
	)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, p.fail(ctx, "claim archive record", err)
	}
	id, err := codec.DecodeID(key)
	n := len(seqs)
	if ids == nil {
		ids = make([][]byte, n)
	}
	if metas == nil {
		metas = make([][]byte, n)
	}
	if err != nil || len(secs) != n || len(nsecs) != n || len(types) != n ||
		len(datas) != n || len(ids) != n || len(metas) != n {
		l.err = fmt.Errorf("postgres: archive record %d of %q: %w",
			l.id, key, timebox.ErrArchiveRecordMalformed)
		return &l, nil
	}
	l.rec = &timebox.ArchiveRecord{
		StreamID:         strconv.FormatInt(l.id, 10),
		AggregateID:      id,
		SnapshotData:     snap,
		SnapshotSequence: snapSeq,
		Events:           make([]*timebox.Event, n),
	}
	var alloc codec.EventAlloc
	for i := range n {
		f := codec.EventFields{
			Sequence: seqs[i], Sec: secs[i], Nsec: nsecs[i],
			Type: types[i], Data: datas[i], ID: ids[i], Metadata: metas[i],
		}
		ev, err := alloc.Event(&f, id)
		if err != nil {
			l.rec, l.err = nil, fmt.Errorf("postgres: archive record %d of %q: %w: %w",
				l.id, key, timebox.ErrArchiveRecordMalformed, err)
			return &l, nil
		}
		l.rec.Events[i] = ev
	}
	return &l, nil
}

// handleArchive runs handler on l and deletes the record if it succeeds,
// or ends the lease if it fails or panics. Both use a context that ctx's
// end does not cancel: a record handled must not be redelivered because
// the caller's context ended just after.
func (p *Persistence) handleArchive(
	ctx context.Context, l *leasedRecord, handler timebox.ArchiveHandler,
) error {
	after := context.WithoutCancel(ctx)
	if l.err != nil {
		p.log.Error("deleting malformed archive record", "record", l.id, "error", l.err)
		if _, err := p.pool.Exec(after, archiveDeleteSQL, p.ns, l.id); err != nil {
			return p.fail(ctx, "delete malformed archive record", err)
		}
		return l.err
	}
	done := false
	defer func() {
		if !done {
			p.releaseArchive(after, l) // handler panicked
		}
	}()
	err := handler(ctx, l.rec)
	done = true
	if err != nil {
		p.releaseArchive(after, l)
		return err
	}
	if _, err := p.pool.Exec(after, archiveDeleteSQL, p.ns, l.id); err != nil {
		return p.fail(ctx, "delete handled archive record", err)
	}
	return nil
}

// releaseArchive ends l's lease early; if that fails, the lease runs out
// by itself.
func (p *Persistence) releaseArchive(ctx context.Context, l *leasedRecord) {
	if _, err := p.pool.Exec(ctx, archiveReleaseSQL, p.ns, l.id, l.lease); err != nil {
		p.log.Warn("archive record kept until its lease runs out",
			"record", l.id, "error", err)
	}
}

// awaitArchive waits until wake is closed (a notification, or the
// listener reconnected), the first lease runs out, ctx ends or p closes.
func (p *Persistence) awaitArchive(ctx context.Context, wake <-chan struct{}) error {
	wait := archiveRecheck
	var ms *int64
	if err := p.pool.QueryRow(ctx, archiveNextExpirySQL, p.ns).Scan(&ms); err != nil {
		return p.fail(ctx, "read archive leases", err)
	}
	if ms != nil {
		wait = min(wait, time.Duration(*ms)*time.Millisecond)
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-wake:
		return nil
	case <-t.C:
		return nil
	case <-ctx.Done():
		return p.fail(ctx, "consume archive", ctx.Err())
	case <-p.done:
		return p.checkOpen()
	}
}

// archiveListener holds the session that LISTENs for archive and feed
// notifications, shared by every ConsumeArchive and ReadFeed of a
// Persistence, started by the first and stopped by Close.
type archiveListener struct {
	start sync.Once
	stop  context.CancelFunc
	wg    sync.WaitGroup

	mu   sync.Mutex
	wake chan struct{} // archive consumers' wake-up (waiter, wake)
	feed chan struct{} // feed readers' wake-up (waiter, wake)
}

// waiter returns the channel the next wake(ch) closes: ch is
// p.listen.wake (archive consumers) or p.listen.feed (feed readers).
func (p *Persistence) waiter(ch *chan struct{}) <-chan struct{} {
	p.listen.mu.Lock()
	defer p.listen.mu.Unlock()
	if *ch == nil {
		*ch = make(chan struct{})
	}
	return *ch
}

// wake wakes everyone waiting on ch (see waiter).
func (p *Persistence) wake(ch *chan struct{}) {
	p.listen.mu.Lock()
	defer p.listen.mu.Unlock()
	if *ch != nil {
		close(*ch)
		*ch = nil
	}
}

func (p *Persistence) startListener() {
	p.listen.start.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		p.listen.stop = cancel
		p.listen.wg.Go(func() { p.runListener(ctx) })
	})
}

// stopListener stops the listener, if it was started, and waits for it.
func (p *Persistence) stopListener() {
	p.listen.start.Do(func() {}) // none may start after this
	if p.listen.stop != nil {
		p.listen.stop()
	}
	p.listen.wg.Wait()
}

// runListener listens until ctx ends, reconnecting with backoff after a
// broken session; each (re)connect wakes the consumers, since
// notifications sent while it was away are lost.
func (p *Persistence) runListener(ctx context.Context) {
	backoff := listenRetryMin
	for ctx.Err() == nil {
		err := p.listenOnce(ctx, func() { backoff = listenRetryMin })
		if ctx.Err() != nil {
			return
		}
		p.log.Warn("listener lost its session; reconnecting",
			"error", err, "retry", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, listenRetryMax)
	}
}

// listenOnce opens a session of its own, with the pool's settings,
// LISTENs on it, calls listening, and wakes the archive consumers or the
// feed readers on every notification for p's ns until the session breaks or ctx ends. The
// session is closed after. ctx's end cuts the wait at once: there is no
// statement for a cancel request to stop.
func (p *Persistence) listenOnce(ctx context.Context, listening func()) error {
	cc := p.pool.Config().ConnConfig.Copy()
	cc.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.DeadlineContextWatcherHandler{Conn: c.Conn()}
	}
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.Background()) }()
	_, err = conn.Exec(ctx, "LISTEN "+archiveChannel+"; LISTEN "+feedChannel)
	if err != nil {
		return err
	}
	listening()
	p.wake(&p.listen.wake)
	p.wake(&p.listen.feed)
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		switch {
		case n.Payload != p.ns:
		case n.Channel == feedChannel:
			p.wake(&p.listen.feed)
		default:
			p.wake(&p.listen.wake)
		}
	}
}
