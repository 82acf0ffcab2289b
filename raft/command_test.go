package raft

import (
	"encoding/binary"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.etcd.io/bbolt"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/codec"
)

func TestCommandRoundTrip(t *testing.T) {
	id := timebox.NewAggregateID("a:b", "\x00{x}", "ü")
	status := "open\x00"
	req := timebox.AppendRequest{
		ID:               id,
		ExpectedSequence: 7,
		Events: []*timebox.Event{
			{Timestamp: time.Time{}, Sequence: 7, Type: "t", AggregateID: id, Data: []byte(`1`)},
			{Timestamp: time.Unix(-5, 3).UTC(), Sequence: 8, Type: "u", AggregateID: id, Data: []byte(`{}`)},
		},
		Index: timebox.IndexChange{
			Status: &status, StatusTime: time.Time{},
			Labels: map[string]string{"k": "v", "gone": ""},
		},
	}
	c, err := decodeAppend(encodeAppend(req))
	require.NoError(t, err)
	require.Equal(t, codec.EncodeID(id), c.key)
	require.EqualValues(t, 7, c.expected)
	require.Equal(t, req.Index, c.index)
	for i, b := range c.events {
		ev, err := codec.DecodeEvent(b, id)
		require.NoError(t, err)
		require.Equal(t, req.Events[i], ev)
	}

	s, err := decodeSnapshot(encodeSnapshot(timebox.SnapshotRequest{
		ID: id, Data: []byte(`{"n":1}`), Sequence: 3, Trim: true,
	}))
	require.NoError(t, err)
	require.Equal(t, &snapshotCmd{key: codec.EncodeID(id), sequence: 3, trim: true, data: []byte(`{"n":1}`)}, s)

	s, err = decodeSnapshot(encodeSnapshot(timebox.SnapshotRequest{
		ID: id, Data: []byte(`{}`), Sequence: 4, IfHead: true,
	}))
	require.NoError(t, err)
	require.Equal(t, &snapshotCmd{key: codec.EncodeID(id), sequence: 4, ifHead: true, data: []byte(`{}`)}, s)
}

func FuzzDecodeCommand(f *testing.F) {
	id := timebox.NewAggregateID("x")
	f.Add(encodeAppend(timebox.AppendRequest{ID: id, Events: []*timebox.Event{
		{Type: "t", Data: []byte(`1`), AggregateID: id},
	}}))
	f.Add(encodeSnapshot(timebox.SnapshotRequest{ID: id, Data: []byte(`1`)}))
	f.Add([]byte{commandVersion, opAppend, 0xff, 0xff})
	f.Add(encodeArchive(id))
	f.Add(encodeLease("token", time.Unix(1, 2), time.Second))
	f.Add(encodeAck(3))
	f.Add(encodeRelease(3, "token"))
	f.Add(encodeConsumer(consumerCmd{
		op: opClaim, name: "c", partition: 1, partitions: 2, owner: "o",
		now: time.Unix(1, 2), ttl: time.Second, pos: timebox.Position{Commit: 3, Offset: 4},
	}))
	f.Add(encodeConsumer(consumerCmd{op: opReset, name: "c"}))
	f.Add(encodeResult(&consumerResult{claim: timebox.Claim{Epoch: 9}}))
	db, err := openState(filepath.Join(f.TempDir(), stateFile), true)
	require.NoError(f, err)
	f.Cleanup(func() { _ = db.Close() })
	errRollback := errors.New("rollback")
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = decodeArchiveRecord(0, b)
		op, err := commandOp(b)
		if err != nil {
			return
		}
		switch op {
		case opAppend:
			_, _ = decodeAppend(b)
		case opSnapshot:
			_, _ = decodeSnapshot(b)
		case opArchive, opLease, opAck, opRelease:
			// Applied to a state file and rolled back: a malformed
			// command is a response, never a panic.
			_ = db.Update(func(tx *bbolt.Tx) error {
				_, _ = applyArchiveOp(tx, op, b)
				return errRollback
			})
		case opClaim, opCommit, opUnlease, opReset, opDelete:
			_ = db.Update(func(tx *bbolt.Tx) error {
				_, _ = applyConsumerOp(tx, 1, op, b)
				return errRollback
			})
		}
		_, _ = decodeConflict(b, id)
		// A result that decodes is the same once encoded and decoded
		// again.
		if res, err := decodeResult(b); err == nil {
			again, err := decodeResult(encodeResult(res))
			require.NoError(t, err)
			require.Equal(t, res, again)
		}
	})
}

// A consumer's epoch is the log index of the command that created or
// last reset it, and reaches the caller in the result's encoding.
func TestConsumerEpochs(t *testing.T) {
	db, err := openState(filepath.Join(t.TempDir(), stateFile), true)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	at := timebox.Position{Commit: 7, Offset: 2}
	apply := func(idx uint64, c consumerCmd) *consumerResult {
		var res any
		require.NoError(t, db.Update(func(tx *bbolt.Tx) error {
			var err error
			res, err = applyConsumerOp(tx, idx, c.op, encodeConsumer(c))
			return err
		}))
		r, ok := res.(*consumerResult)
		require.True(t, ok, "response %v", res)
		wire, err := decodeResult(encodeResult(r))
		require.NoError(t, err)
		require.Equal(t, r, wire)
		return r
	}
	claim := func(idx uint64, owner string) timebox.Claim {
		r := apply(idx, consumerCmd{
			op: opClaim, name: "c", partition: 1, partitions: 2, owner: owner,
			now: time.Now(), ttl: time.Minute,
		})
		require.NoError(t, r.err)
		return r.claim
	}

	// A consumer stored before epochs existed: its partition count alone.
	require.NoError(t, db.Update(func(tx *bbolt.Tx) error {
		err := tx.Bucket(bucketConsumers).Put(consumerKey("c"), binary.AppendUvarint(nil, 2))
		for i := range 2 {
			if err == nil {
				err = putPart(tx, "c", i, partState{checkpoint: at})
			}
		}
		return err
	}))
	require.Equal(t, timebox.Claim{Checkpoint: at}, claim(3, "a"), "no epoch reads as 0")
	require.Equal(t, timebox.Claim{Checkpoint: at}, claim(4, "a"), "and stays so")
	require.NoError(t, db.View(func(tx *bbolt.Tx) error {
		infos, err := listConsumers(tx)
		require.Len(t, infos, 1)
		require.Equal(t, at, infos[0].Partitions[1].Checkpoint)
		return err
	}))

	require.NoError(t, apply(5, consumerCmd{op: opReset, name: "c"}).err)
	require.Equal(t, timebox.Claim{Epoch: 5}, claim(6, "b"), "a reset: its index")
	require.Equal(t, timebox.Claim{Epoch: 5}, claim(7, "b"))
	require.NoError(t, apply(8, consumerCmd{op: opReset, name: "c"}).err)
	require.Equal(t, timebox.Claim{Epoch: 8}, claim(9, "b"))
	require.NoError(t, apply(10, consumerCmd{op: opDelete, name: "c"}).err)
	require.Equal(t, timebox.Claim{Epoch: 11}, claim(11, "a"), "created again: its index")
	require.Equal(t, timebox.Claim{Epoch: 11}, claim(12, "a"))
}
