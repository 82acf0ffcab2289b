package conformance

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/codec"
)

// MalformedStored requires that b, holding an event of id from sequence 0
// that the test has corrupted in storage, fails every read of it with an
// error wrapping codec.ErrMalformedEvent: LoadEvents, LoadSnapshot and,
// with conflict, the read of the new events for an Append at sequence 0,
// which must not pass for a *timebox.VersionConflictError.
func MalformedStored(
	t *testing.T, b timebox.Backend, id timebox.AggregateID, conflict bool,
) {
	t.Helper()
	ctx := context.Background()
	_, err := b.LoadEvents(ctx, id, 0)
	require.ErrorIs(t, err, codec.ErrMalformedEvent)
	_, err = b.LoadSnapshot(ctx, id)
	require.ErrorIs(t, err, codec.ErrMalformedEvent)
	if !conflict {
		return
	}
	err = b.Append(ctx, timebox.AppendRequest{ID: id, Events: []*timebox.Event{
		{Type: "t", Data: json.RawMessage(`{}`)},
	}})
	require.ErrorIs(t, err, codec.ErrMalformedEvent)
	var c *timebox.VersionConflictError
	require.NotErrorAs(t, err, &c)
}
