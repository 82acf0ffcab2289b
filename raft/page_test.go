package raft

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.etcd.io/bbolt"

	"github.com/kode4food/timebox"
)

// A state file written before by_status_time existed pages statuses from
// by_status, and gets the bucket, filled, when a status is next set.
func TestStatusPagesOnOldStateFile(t *testing.T) {
	p := newSingle(t, Config{})
	open := "open"
	s := newStore(t, p, timebox.Config{Indexer: func([]*timebox.Event) []*timebox.Index {
		return []*timebox.Index{{Status: &open}}
	}})
	base := time.Unix(1_700_000_000, 0).UTC()
	const n = 9
	for i := range n {
		id := timebox.NewAggregateID("a", timebox.ID(fmt.Sprint(i)))
		ev := &timebox.Event{Type: "x", Data: []byte("1"), Timestamp: base.Add(time.Duration(n-i) * time.Second)}
		require.NoError(t, s.AppendEvents(id, 0, []*timebox.Event{ev}))
	}
	pages := func() []timebox.StatusEntry {
		var res []timebox.StatusEntry
		var after timebox.Cursor
		for {
			page, err := s.ListAggregatesByStatusPage(context.Background(), "open", after, 2)
			require.NoError(t, err)
			res = append(res, page.Entries...)
			if after = page.Next; after == "" {
				return res
			}
		}
	}
	want, err := s.ListAggregatesByStatus("open")
	require.NoError(t, err)
	require.Equal(t, want, pages())

	require.NoError(t, p.fsm.db.Update(func(tx *bbolt.Tx) error {
		return tx.DeleteBucket(bucketStatusTime)
	}))
	require.Equal(t, want, pages(), "read from by_status")

	id := timebox.NewAggregateID("a", "new")
	ev := &timebox.Event{Type: "x", Data: []byte("1"), Timestamp: base}
	require.NoError(t, s.AppendEvents(id, 0, []*timebox.Event{ev}))
	require.NoError(t, p.fsm.view(func(tx *bbolt.Tx) error {
		require.NotNil(t, tx.Bucket(bucketStatusTime), "filled again")
		return nil
	}))
	want, err = s.ListAggregatesByStatus("open")
	require.NoError(t, err)
	require.Len(t, want, n+1)
	require.Equal(t, want, pages())
}
