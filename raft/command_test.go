package raft

import (
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
		}
		_, _ = decodeConflict(b, id)
	})
}
