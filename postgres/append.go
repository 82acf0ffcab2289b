package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/codec"
)

// uniqueViolation is the SQLSTATE of a unique-key violation.
const uniqueViolation = "23505"

// Append writes req with one statement (see sql/append.sql),
// so in one round trip: the head check, the events, their place in the
// feed, the status and the labels commit together or not at all. Only on
// conflict does a second statement read the head and the events from the
// expected sequence on.
//
// It returns a *timebox.VersionConflictError when the head is not at
// req.ExpectedSequence, timebox.ErrUnknownOutcome (wrapped with the
// driver's error) when the statement was sent but its result was lost,
// timebox.ErrClosed after Close, or another error when nothing was
// written.
func (p *Persistence) Append(ctx context.Context, req timebox.AppendRequest) error {
	if err := p.checkOpen(); err != nil {
		return err
	}
	key, err := writeKey(req.ID)
	if err != nil {
		return err
	}
	conn, err := p.pool.Acquire(ctx)
	if err != nil {
		return p.fail(ctx, "append", err)
	}
	defer conn.Release()
	// The last look before sending: a batch's joined context is done once
	// its callers' are, which its Err sees before its Done channel closes,
	// and neither the pool nor pgx asks Err.
	if err := ctx.Err(); err != nil {
		return p.fail(ctx, "append", err)
	}
	if len(req.Events) == 0 {
		return p.checkHead(ctx, conn.Conn(), key, req)
	}

	notify := p.beginAppend()
	var appended bool
	err = conn.QueryRow(ctx, appendSQL, appendArgs(p.ns, key, req, notify)...).Scan(&appended)
	// A failed append may have committed (its outcome unknown): announce it.
	p.appended(notify, err != nil || appended)
	switch {
	case err != nil:
		return p.appendFailed(ctx, conn.Conn(), key, req, err)
	case !appended:
		return p.checkHead(ctx, conn.Conn(), key, req)
	}
	return nil
}

// appendFailed classifies an append's error: a unique-key violation is a
// conflict; a server error means the statement was rolled back, and an
// error pgx marks safe to retry means it was never sent; anything else
// leaves the outcome unknown.
func (p *Persistence) appendFailed(
	ctx context.Context, conn *pgx.Conn, key string,
	req timebox.AppendRequest, err error,
) error {
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == uniqueViolation:
		// Only possible when rows were written around this code: the
		// head check let the append through, the primary key did not.
		return p.checkHead(ctx, conn, key, req)
	case errors.As(err, &pgErr), pgconn.SafeToRetry(err):
		return p.fail(ctx, "append", err)
	}
	return fmt.Errorf("postgres: append: %w: %w", timebox.ErrUnknownOutcome, err)
}

// appendArgs returns the arguments of the append statement
// (sql/append.sql) for req, which has events: the events column by
// column, and the index change, NULL when there is none.
func appendArgs(ns, key string, req timebox.AppendRequest, notify bool) []any {
	evs := req.Events
	secs := make([]int64, len(evs))
	nsecs := make([]int32, len(evs))
	types := make([][]byte, len(evs))
	data := make([][]byte, len(evs))
	ids := make([][]byte, len(evs))
	mds := make([][]byte, len(evs))
	for i, ev := range evs {
		secs[i] = ev.Timestamp.Unix()
		nsecs[i] = int32(ev.Timestamp.Nanosecond())
		types[i] = []byte(ev.Type)
		data[i] = ev.Data
		ids[i] = []byte(ev.ID)
		mds[i] = encodeMetadata(ev.Metadata)
	}
	args := []any{
		ns, key, req.ExpectedSequence,
		secs, nsecs, types, data, ids, mds, notify,
	}
	return append(args, indexArgs(req.Index)...)
}

// encodeMetadata returns md as the metadata column holds it: NULL (nil)
// when empty, else codec.AppendMetadata.
func encodeMetadata(md timebox.Metadata) []byte {
	if len(md) == 0 {
		return nil
	}
	return codec.AppendMetadata(nil, md)
}

func indexArgs(ix timebox.IndexChange) []any {
	var status []byte // NULL: leave the status alone
	var sec int64
	var nsec int32
	if ix.Status != nil {
		status = []byte(*ix.Status) // non-nil even when empty: '' clears it
		sec = ix.StatusTime.Unix()
		nsec = int32(ix.StatusTime.Nanosecond())
	}
	names := make([][]byte, 0, len(ix.Labels))
	values := make([][]byte, 0, len(ix.Labels))
	for k, v := range ix.Labels {
		names = append(names, []byte(k))
		values = append(values, []byte(v))
	}
	return []any{status, sec, nsec, names, values}
}

// checkHead checks the head against req.ExpectedSequence with one
// statement (sql/check_head.sql): nil when it is there, else a
// *timebox.VersionConflictError with the head and the events from the
// expected sequence to it, read from one snapshot. After an append's
// conflict the head has moved, but it may be back at the expected
// sequence by then (the aggregate was archived and begun again): that is
// still a conflict, with no new events, since the append wrote nothing.
func (p *Persistence) checkHead(
	ctx context.Context, conn *pgx.Conn, key string, req timebox.AppendRequest,
) error {
	rows, _ := conn.Query(ctx, checkHeadSQL, p.ns, key, req.ExpectedSequence)
	c, err := scanConflict(rows, req)
	switch {
	case err != nil:
		return p.fail(ctx, "append: read head", err)
	case c == nil && len(req.Events) > 0:
		return &timebox.VersionConflictError{
			ExpectedSequence: req.ExpectedSequence,
			ActualSequence:   req.ExpectedSequence,
			NewEvents:        []*timebox.Event{},
		}
	case c == nil:
		return nil
	}
	return c
}

// scanConflict reads check_head.sql's result: nothing when the head is at
// the expected sequence, else one row per event from it on, each with the
// head (one row without an event when there are none).
func scanConflict(
	rows pgx.Rows, req timebox.AppendRequest,
) (*timebox.VersionConflictError, error) {
	defer rows.Close()
	var res *timebox.VersionConflictError
	id := slices.Clone(req.ID)
	var alloc codec.EventAlloc
	for rows.Next() {
		var head int64
		var seq, sec *int64
		var nsec *int32
		var typ, data, eid, md []byte
		err := rows.Scan(&head, &seq, &sec, &nsec, &typ, &data, &eid, &md)
		if err != nil {
			return nil, err
		}
		if res == nil {
			res = &timebox.VersionConflictError{
				ExpectedSequence: req.ExpectedSequence,
				ActualSequence:   head,
				NewEvents:        []*timebox.Event{},
			}
		}
		if seq == nil {
			continue
		}
		f := codec.EventFields{
			Sequence: *seq, Sec: *sec, Nsec: *nsec,
			Type: typ, Data: data, ID: eid, Metadata: md,
		}
		ev, err := alloc.Event(&f, id)
		if err != nil {
			return nil, err
		}
		res.NewEvents = append(res.NewEvents, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return res, nil
}

// MaxKeyLength is the longest encoded aggregate ID (codec.EncodeID) the
// backend writes: PostgreSQL's btree indexes refuse entries much past 2.7
// KB, and the key shares its index entry with the namespace. A longer ID
// fails with timebox.ErrInvalidAggregateID before anything is sent.
const MaxKeyLength = 2048

// writeKey returns the key under which id is written.
func writeKey(id timebox.AggregateID) (string, error) {
	key := codec.EncodeID(id)
	if len(key) > MaxKeyLength {
		return "", fmt.Errorf("%w: encoded ID is %d bytes, postgres keeps at most %d",
			timebox.ErrInvalidAggregateID, len(key), MaxKeyLength)
	}
	return key, nil
}
