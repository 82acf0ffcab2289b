package redis

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/conformance"
)

// A stored batch holding a record EncodeEvent cannot have made fails every
// read of it, through the decoding the backends share.
func TestMalformedStoredEvent(t *testing.T) {
	p := newPersistence(t, Config{})
	ctx := context.Background()
	id := timebox.NewAggregateID("bad", "1")
	req := timebox.AppendRequest{ID: id, Events: []*timebox.Event{event("x")}}
	require.NoError(t, p.Append(ctx, req))
	k := p.keys.aggregate(id)
	require.NoError(t, p.client.ZRemRangeByRank(ctx, k.events, 0, -1).Err())
	require.NoError(t, p.client.ZAdd(ctx, k.events,
		redis.Z{Score: 0, Member: "2:\x09x"}).Err())
	conformance.MalformedStored(t, p, id, true)
}
