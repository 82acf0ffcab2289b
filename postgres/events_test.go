package postgres_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/codec"
)

// A stored event whose metadata column codec.AppendMetadata cannot have
// written fails every read of it (load, snapshot load, a conflict's new
// events) with codec.ErrMalformedEvent, through the decoding the backends
// share.
func TestMalformedStoredEvent(t *testing.T) {
	cfg := testConfig(t)
	p := newPersistence(t, cfg)
	ctx := context.Background()
	id := timebox.NewAggregateID("bad", "1")
	req := timebox.AppendRequest{ID: id, Events: []*timebox.Event{
		{Type: "t", Data: json.RawMessage(`{}`)},
	}}
	require.NoError(t, p.Append(ctx, req))
	_, err := adminConn(t, cfg.URL).Exec(ctx,
		`UPDATE timebox_events SET metadata = '\x09'::bytea WHERE ns = $1`, cfg.Prefix)
	require.NoError(t, err)

	_, err = p.LoadEvents(ctx, id, 0)
	require.ErrorIs(t, err, codec.ErrMalformedEvent)
	_, err = p.LoadSnapshot(ctx, id)
	require.ErrorIs(t, err, codec.ErrMalformedEvent)
	err = p.Append(ctx, req)
	require.ErrorIs(t, err, codec.ErrMalformedEvent)
	var conflict *timebox.VersionConflictError
	require.NotErrorAs(t, err, &conflict)
}
