package raft

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.etcd.io/bbolt"

	"github.com/kode4food/timebox"
)

// TestKeysTooLongAreRefused: an aggregate ID, status or label too long for
// a key of the state file (bolt takes 32 KiB) is refused with a clear
// error before anything is proposed, and a command that reaches the state
// machine anyway is rejected there, the same on every node: the log goes
// on being applied, and the node takes writes and restarts as before.
// (Such an entry was once committed, failed to apply on every node as a
// disk failure, and stopped the cluster for good.)
func TestKeysTooLongAreRefused(t *testing.T) {
	dir := t.TempDir()
	p := newSingle(t, Config{DataDir: dir})
	// The indexer takes the status and a label's value from the event.
	st := newStore(t, p, timebox.Config{Indexer: func(evs []*timebox.Event) []*timebox.Index {
		var ix struct{ Status, Label string }
		_ = json.Unmarshal(evs[len(evs)-1].Data, &ix)
		res := &timebox.Index{Labels: map[string]string{"l": ix.Label}}
		if ix.Status != "" {
			res.Status = &ix.Status
		}
		return []*timebox.Index{res}
	}})
	ctx := context.Background()
	long := strings.Repeat("x", bbolt.MaxKeySize)
	ev := func(status, label string) []*timebox.Event {
		data, err := json.Marshal(map[string]string{"Status": status, "Label": label})
		require.NoError(t, err)
		return []*timebox.Event{{Type: "t", Data: data}}
	}
	longID := timebox.NewAggregateID("a", timebox.ID(long))

	err := st.AppendEvents(longID, 0, ev("open", "v"))
	require.ErrorIs(t, err, timebox.ErrInvalidAggregateID)
	err = st.PutSnapshot(longID, 1, 0)
	require.ErrorIs(t, err, timebox.ErrInvalidAggregateID)
	id := timebox.NewAggregateID("a", "1")
	require.ErrorIs(t, st.AppendEvents(id, 0, ev(long, "v")), ErrIndexTooLong)
	require.ErrorIs(t, st.AppendEvents(id, 0, ev("open", long)), ErrIndexTooLong)

	// The longest ID that fits is taken, with a status and a label.
	fits := timebox.NewAggregateID(timebox.ID(strings.Repeat("y", 16<<10)))
	require.NoError(t, st.AppendEvents(fits, 0, ev("open", "v")))

	// Past Append's check, straight to the log: rejected by the state
	// machine, which goes on.
	applied := p.fsm.applied.Load()
	cmd := encodeAppend(timebox.AppendRequest{
		ID: longID, Events: []*timebox.Event{{
			ID: "e", Type: "t", Data: []byte(`{}`), Timestamp: time.Now(),
		}},
	})
	err = p.propose(ctx, cmd, longID)
	require.ErrorIs(t, err, timebox.ErrInvalidAggregateID)
	require.Greater(t, p.fsm.applied.Load(), applied)
	require.NoError(t, p.Err())

	require.NoError(t, st.AppendEvents(id, 0, ev("open", "v")))
	evs, err := st.GetEvents(longID, 0)
	require.NoError(t, err)
	require.Empty(t, evs)
	ids, err := st.ListAggregates(nil)
	require.NoError(t, err)
	require.Len(t, ids, 2)

	// A restart replays the rejected entry without stopping.
	require.NoError(t, p.Close())
	p = newSingle(t, Config{DataDir: dir})
	st = newStore(t, p, timebox.Config{})
	evs, err = st.GetEvents(id, 0)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	require.NoError(t, st.AppendEvents(id, 1, ev("", "")))
}

// TestWriteTooLarge: a command that could not be forwarded to a leader
// in one frame fails at once with ErrWriteTooLarge, on the leader too, so
// that leader and followers take the same writes; nothing is sent.
func TestWriteTooLarge(t *testing.T) {
	p := newSingle(t, Config{})
	id := timebox.NewAggregateID("big")
	err := p.propose(context.Background(), make([]byte, maxFrame), id)
	require.ErrorIs(t, err, ErrWriteTooLarge)
	require.NoError(t, p.Err())
	st := newStore(t, p, timebox.Config{})
	require.NoError(t, st.AppendEvents(id, 0, items("a", 1)))
}
