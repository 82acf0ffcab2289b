package timebox

import (
	"context"
	"encoding/json"
	"fmt"
)

// SnapshotResult describes what GetSnapshot loaded.
type SnapshotResult struct {
	// AdditionalEvents are the stored events from NextSequence on.
	AdditionalEvents []*Event
	// NextSequence is the snapshot's sequence, 0 without a snapshot.
	NextSequence int64
	// SnapshotSize is the snapshot's length in bytes as marshalled.
	SnapshotSize int
	// EventsSize is the summed length of the AdditionalEvents' Data.
	EventsSize int
}

// GetSnapshot is GetSnapshotContext with context.Background().
func (s *Store) GetSnapshot(id AggregateID, target any) (*SnapshotResult, error) {
	return s.GetSnapshotContext(context.Background(), id, target)
}

// GetSnapshotContext decodes id's latest snapshot into target, leaving
// target untouched when there is none, and returns the events stored after
// it, all from one backend call. Applying AdditionalEvents to target gives
// the aggregate's state.
func (s *Store) GetSnapshotContext(
	ctx context.Context, id AggregateID, target any,
) (*SnapshotResult, error) {
	if err := s.check(id); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var rec *SnapshotRecord
	err := s.retry(ctx, false, func() (err error) {
		rec, err = s.backend.LoadSnapshot(ctx, id.Clone())
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(rec.Data) > 0 {
		if err := json.Unmarshal(rec.Data, target); err != nil {
			return nil, fmt.Errorf("decode snapshot of %s: %w", id, err)
		}
	}
	res := &SnapshotResult{
		AdditionalEvents: nonNil(rec.Events),
		NextSequence:     rec.Sequence,
		SnapshotSize:     len(rec.Data),
	}
	for _, ev := range rec.Events {
		res.EventsSize += len(ev.Data)
	}
	return res, nil
}

// PutSnapshot is PutSnapshotContext with context.Background().
func (s *Store) PutSnapshot(id AggregateID, value any, sequence int64) error {
	return s.PutSnapshotContext(context.Background(), id, value, sequence)
}

// PutSnapshotContext stores json.Marshal(value) as id's snapshot at
// sequence. A snapshot older than the stored one is ignored; an equal one
// replaces it. A snapshot beyond the head moves the head there, so the
// aggregate continues from it. With Config.TrimEvents, events below
// sequence leave live storage. It fails for a value that cannot be
// marshalled, a negative sequence, an invalid ID or a closed store.
func (s *Store) PutSnapshotContext(
	ctx context.Context, id AggregateID, value any, sequence int64,
) error {
	if err := s.check(id); err != nil {
		return err
	}
	return s.putSnapshot(ctx, id, value, sequence, false)
}

// putSnapshot stores value as id's snapshot at sequence; with ifHead only
// if id is live and its head is exactly sequence (see
// SnapshotRequest.IfHead). id has been checked.
func (s *Store) putSnapshot(
	ctx context.Context, id AggregateID, value any, sequence int64, ifHead bool,
) error {
	if sequence < 0 {
		return fmt.Errorf("%w: snapshot at %d", ErrInvalidSequence, sequence)
	}
	data, err := json.Marshal(value)
	if err != nil {
		return fmt.Errorf("encode snapshot of %s: %w", id, err)
	}
	return s.backend.SaveSnapshot(ctx, SnapshotRequest{
		ID:       id.Clone(),
		Data:     data,
		Sequence: sequence,
		Trim:     s.config.TrimEvents,
		IfHead:   ifHead,
	})
}
