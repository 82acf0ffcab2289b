package postgres_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/conformance"
)

// A stored event whose metadata column codec.AppendMetadata cannot have
// written fails every read of it, through the decoding the backends share.
func TestMalformedStoredEvent(t *testing.T) {
	cfg := testConfig(t)
	p := newPersistence(t, cfg)
	ctx := context.Background()
	id := timebox.NewAggregateID("bad", "1")
	require.NoError(t, p.Append(ctx, timebox.AppendRequest{ID: id, Events: []*timebox.Event{
		{Type: "t", Data: json.RawMessage(`{}`)},
	}}))
	_, err := adminConn(t, cfg.URL).Exec(ctx,
		`UPDATE timebox_events SET metadata = '\x09'::bytea WHERE ns = $1`, cfg.Prefix)
	require.NoError(t, err)
	conformance.MalformedStored(t, p, id, true)
}
