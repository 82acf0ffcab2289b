package raft

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"go.etcd.io/bbolt"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/codec"
	"github.com/kode4food/timebox/internal/conformance"
)

// A stored event EncodeEvent cannot have made fails every read of it,
// through the decoding the backends share. (Not the conflict read: that
// runs in the state machine.)
func TestMalformedStoredEvent(t *testing.T) {
	p := newSingle(t, Config{})
	id := timebox.NewAggregateID("bad", "1")
	require.NoError(t, p.Append(context.Background(),
		timebox.AppendRequest{ID: id, Events: items("e", 2)}))
	p.fsm.mu.RLock()
	err := p.fsm.db.Update(func(tx *bbolt.Tx) error {
		key := eventKey(codec.EncodeID(id), 1)
		return tx.Bucket(bucketEvents).Put(key, []byte{0x09})
	})
	p.fsm.mu.RUnlock()
	require.NoError(t, err)
	conformance.MalformedStored(t, p, id, false)
}
