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

// Append writes req in one round trip, through timebox_append (see
// schema.sql): the head check, the events, the status and the labels
// commit together or not at all.
//
// It returns a *timebox.VersionConflictError when the head is not at
// req.ExpectedSequence, timebox.ErrUnknownOutcome (wrapped with the
// driver's error) when the call was sent but its result was lost,
// timebox.ErrClosed after Close, or another error when nothing was
// written.
func (p *Persistence) Append(ctx context.Context, req timebox.AppendRequest) error {
	if err := p.checkOpen(); err != nil {
		return err
	}
	conn, err := p.pool.Acquire(ctx)
	if err != nil {
		return p.fail(ctx, "append", err)
	}
	defer conn.Release()

	key := codec.EncodeID(req.ID)
	rows, _ := conn.Query(ctx, appendSQL, appendArgs(p.ns, key, req)...)
	conflict, err := scanConflict(rows, req)
	switch {
	case err == nil && conflict == nil:
		return nil
	case err == nil:
		return conflict
	}

	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == uniqueViolation:
		return p.conflictAfterViolation(ctx, conn.Conn(), key, req)
	case errors.As(err, &pgErr), pgconn.SafeToRetry(err):
		// The server rolled the call back, or never received it.
		return p.fail(ctx, "append", err)
	}
	return fmt.Errorf("postgres: append: %w: %w", timebox.ErrUnknownOutcome, err)
}

func appendArgs(ns, key string, req timebox.AppendRequest) []any {
	n := len(req.Events)
	secs := make([]int64, n)
	nsecs := make([]int32, n)
	types := make([][]byte, n)
	data := make([][]byte, n)
	for i, ev := range req.Events {
		secs[i] = ev.Timestamp.Unix()
		nsecs[i] = int32(ev.Timestamp.Nanosecond())
		types[i] = []byte(ev.Type)
		data[i] = ev.Data
	}

	var status []byte // NULL: leave the status alone
	var statusSec int64
	var statusNsec int32
	if s := req.Index.Status; s != nil {
		status = []byte(*s) // non-nil even when empty: '' clears it
		statusSec = req.Index.StatusTime.Unix()
		statusNsec = int32(req.Index.StatusTime.Nanosecond())
	}

	names := make([][]byte, 0, len(req.Index.Labels))
	values := make([][]byte, 0, len(req.Index.Labels))
	for k, v := range req.Index.Labels {
		names = append(names, []byte(k))
		values = append(values, []byte(v))
	}
	return []any{
		ns, key, req.ExpectedSequence, secs, nsecs, types, data,
		status, statusSec, statusNsec, names, values,
	}
}

// scanConflict reads timebox_append's result: nothing on success, else
// the head in a row without a sequence, then the events from the expected
// sequence on.
func scanConflict(
	rows pgx.Rows, req timebox.AppendRequest,
) (*timebox.VersionConflictError, error) {
	defer rows.Close()
	var res *timebox.VersionConflictError
	for rows.Next() {
		var head int64
		var seq, sec *int64
		var nsec *int32
		var typ, data []byte
		if err := rows.Scan(&head, &seq, &sec, &nsec, &typ, &data); err != nil {
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
		res.NewEvents = append(res.NewEvents,
			newEvent(slices.Clone(req.ID), *seq, *sec, *nsec, typ, data),
		)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return res, nil
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
