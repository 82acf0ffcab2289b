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
// feed, the status and the labels commit together or not at all. On conflict the same statement
// returns the events from the expected sequence on; only when it had to
// wait for the writer that beat it does a second read fetch what that
// writer committed.
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

	events := len(req.Events) > 0
	notify := events && p.beginAppend()
	sql, args := appendQuery(p.ns, key, req, notify)
	rows, _ := conn.Query(ctx, sql, args...)
	conflict, err := scanConflict(rows, req)
	if events {
		// A failed append may have committed (its outcome unknown): announce it.
		p.appended(notify, conflict == nil)
	}
	switch {
	case err != nil:
		return p.appendFailed(ctx, conn.Conn(), key, req, err)
	case conflict != nil:
		return p.completeConflict(ctx, conn.Conn(), key, req.ID, conflict)
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
		return p.conflictAfterViolation(ctx, conn, key, req)
	case errors.As(err, &pgErr), pgconn.SafeToRetry(err), len(req.Events) == 0:
		return p.fail(ctx, "append", err)
	}
	return fmt.Errorf("postgres: append: %w: %w", timebox.ErrUnknownOutcome, err)
}

// appendQuery returns the statement for req and its arguments: a head
// check for an empty batch, else the append statement in the shape of
// req: for a new or an existing aggregate, one event or several, with or
// without an index change, notifying the feed's channel or not (see
// sql/append.sql).
func appendQuery(
	ns, key string, req timebox.AppendRequest, notify bool,
) (string, []any) {
	n := len(req.Events)
	if n == 0 {
		return checkHeadSQL, []any{ns, key, req.ExpectedSequence}
	}
	evs := eventArgs(req.Events)
	args := append([]any{ns, key, req.ExpectedSequence}, evs[:4]...)
	args = append(args, int64(n), evs[4], evs[5])
	sql := appendSQL[boolIndex(notify)][boolIndex(req.ExpectedSequence == 0)][boolIndex(n > 1)]
	if req.Index.IsZero() {
		return sql[0], args
	}
	return sql[1], append(args, indexArgs(req.Index)...)
}

// eventArgs returns the seconds, nanoseconds, types, data, IDs and
// encoded metadata of evs, as scalars for one event and as arrays for more.
func eventArgs(evs []*timebox.Event) []any {
	if len(evs) == 1 {
		ev := evs[0]
		return []any{
			ev.Timestamp.Unix(), int32(ev.Timestamp.Nanosecond()),
			[]byte(ev.Type), []byte(ev.Data),
			[]byte(ev.ID), encodeMetadata(ev.Metadata),
		}
	}
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
	return []any{secs, nsecs, types, data, ids, mds}
}

// encodeMetadata returns md as the metadata column holds it: NULL (nil)
// when empty, else codec.AppendMetadata.
func encodeMetadata(md timebox.Metadata) []byte {
	if len(md) == 0 {
		return nil
	}
	return codec.AppendMetadata(nil, md)
}

func boolIndex(b bool) int {
	if b {
		return 1
	}
	return 0
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

// scanConflict reads the append statement's result: nothing on success, else one
// row per event from the expected sequence on, each with the head (one
// row without an event when there are none).
func scanConflict(
	rows pgx.Rows, req timebox.AppendRequest,
) (*timebox.VersionConflictError, error) {
	defer rows.Close()
	var res *timebox.VersionConflictError
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
		ev, err := f.Event(slices.Clone(req.ID))
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

// completeConflict reads what the append statement could not see because
// it was committed while the statement waited for its writer: the head of
// an aggregate created meanwhile, and the events up to the head.
func (p *Persistence) completeConflict(
	ctx context.Context, conn *pgx.Conn, key string,
	id timebox.AggregateID, c *timebox.VersionConflictError,
) error {
	if c.ActualSequence == c.ExpectedSequence {
		// A head row created after the statement's snapshot is invisible
		// to it even FOR SHARE: read the head afresh.
		err := conn.QueryRow(ctx, headSQL, p.ns, key).Scan(&c.ActualSequence)
		if err != nil {
			return p.fail(ctx, "append: read head after conflict", err)
		}
	}
	next := c.ExpectedSequence
	if n := len(c.NewEvents); n > 0 {
		next = c.NewEvents[n-1].Sequence + 1
	}
	if next >= c.ActualSequence {
		return c
	}
	rows, _ := conn.Query(ctx, loadEventsSQL, p.ns, key, next)
	evs, err := scanEvents(rows, slices.Clone(id))
	if err != nil {
		return p.fail(ctx, "append: read events after conflict", err)
	}
	for _, ev := range evs {
		if ev.Sequence >= c.ActualSequence {
			break
		}
		c.NewEvents = append(c.NewEvents, ev)
	}
	return c
}

// conflictAfterViolation builds the conflict for an append stopped by the
// unique key rather than the head check, which only happens when rows were
// written around timebox_append. The extra round trip is the rare path.
func (p *Persistence) conflictAfterViolation(
	ctx context.Context, conn *pgx.Conn, key string, req timebox.AppendRequest,
) error {
	var head int64
	if err := conn.QueryRow(ctx, headSQL, p.ns, key).Scan(&head); err != nil {
		return p.fail(ctx, "append: read head after conflict", err)
	}
	rows, _ := conn.Query(ctx, loadEventsSQL, p.ns, key, req.ExpectedSequence)
	evs, err := scanEvents(rows, slices.Clone(req.ID))
	if err != nil {
		return p.fail(ctx, "append: read events after conflict", err)
	}
	return &timebox.VersionConflictError{
		ExpectedSequence: req.ExpectedSequence,
		ActualSequence:   head,
		NewEvents:        evs,
	}
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
