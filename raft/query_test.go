package raft

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"go.etcd.io/bbolt"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/codec"
)

// A stored event EncodeEvent cannot have made fails every read of it (load,
// snapshot load) with codec.ErrMalformedEvent, through the decoding the
// backends share.
func TestMalformedStoredEvent(t *testing.T) {
	p := newSingle(t, Config{})
	ctx := context.Background()
	id := timebox.NewAggregateID("bad", "1")
	require.NoError(t, p.Append(ctx, timebox.AppendRequest{ID: id, Events: items("e", 2)}))
	key := codec.EncodeID(id)
	p.fsm.mu.RLock()
	err := p.fsm.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketEvents).Put(eventKey(key, 1), []byte{0x09})
	})
	p.fsm.mu.RUnlock()
	require.NoError(t, err)

	_, err = p.LoadEvents(ctx, id, 0)
	require.ErrorIs(t, err, codec.ErrMalformedEvent)
	require.ErrorContains(t, err, "event 1 of ")
	_, err = p.LoadSnapshot(ctx, id)
	require.ErrorIs(t, err, codec.ErrMalformedEvent)
	evs, err := p.LoadEvents(ctx, id, 2)
	require.NoError(t, err)
	require.Empty(t, evs)
}
