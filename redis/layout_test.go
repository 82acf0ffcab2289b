package redis

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
)

// appendOldLayout appends evs at sequence seq the way versions before the
// feed entry became a batch's only copy did: the framed batch itself is
// the batch set's member (and the feed holds a copy of it).
func appendOldLayout(t *testing.T, p *Persistence, id timebox.AggregateID, seq int64, evs ...*timebox.Event) {
	t.Helper()
	ctx := context.Background()
	k := p.keys.aggregate(id)
	batch := string(frameBatch(seq, evs))
	require.NoError(t, p.client.XAdd(ctx, &redis.XAddArgs{
		Stream: p.keys.feed, ID: "0-*", Values: []any{"i", k.eid, "b", batch},
	}).Err())
	require.NoError(t, p.client.ZAdd(ctx, k.events,
		redis.Z{Score: float64(seq + int64(len(evs)) - 1), Member: batch}).Err())
	require.NoError(t, p.client.HSet(ctx, k.meta, "h", seq+int64(len(evs))).Err())
	require.NoError(t, p.client.ZAdd(ctx, p.keys.aggs, redis.Z{Member: k.eid}).Err())
}

func eventData(t *testing.T, evs []*timebox.Event) []string {
	t.Helper()
	res := make([]string, len(evs))
	for i, ev := range evs {
		require.NoError(t, json.Unmarshal(ev.Data, &res[i]))
		require.EqualValues(t, i, ev.Sequence-evs[0].Sequence, "gap at %d", i)
	}
	return res
}

// Batches stored by older versions (the batch itself as the batch set's
// member) are read beside batches stored as feed entry IDs, by every
// reader: loads, a conflict's NewEvents, trimming and archiving.
func TestOldLayoutBatches(t *testing.T) {
	p := newPersistence(t, Config{})
	ctx := context.Background()
	st, err := p.NewStore(timebox.Config{})
	require.NoError(t, err)
	id := timebox.NewAggregateID("old", "1")
	appendOldLayout(t, p, id, 0, event("a"), event("b"))
	appendOldLayout(t, p, id, 2, event("c"))

	evs, err := st.GetEvents(id, 1)
	require.NoError(t, err)
	require.Equal(t, []string{"b", "c"}, eventData(t, evs))
	require.EqualValues(t, 1, evs[0].Sequence)

	require.NoError(t, st.AppendEvents(id, 3, []*timebox.Event{event("d"), event("e")}))
	err = st.AppendEvents(id, 1, []*timebox.Event{event("x")})
	var conflict *timebox.VersionConflictError
	require.ErrorAs(t, err, &conflict)
	require.EqualValues(t, 5, conflict.ActualSequence)
	require.Equal(t, []string{"b", "c", "d", "e"}, eventData(t, conflict.NewEvents))
	require.EqualValues(t, 1, conflict.NewEvents[0].Sequence)

	n, err := p.client.ZCard(ctx, p.keys.aggregate(id).events).Result()
	require.NoError(t, err)
	require.EqualValues(t, 3, n, "one member per batch")

	require.NoError(t, p.SaveSnapshot(ctx, timebox.SnapshotRequest{
		ID: id, Sequence: 2, Data: json.RawMessage(`{}`), Trim: true,
	}))
	rec, err := p.LoadSnapshot(ctx, id)
	require.NoError(t, err)
	require.EqualValues(t, 2, rec.Sequence)
	require.Equal(t, []string{"c", "d", "e"}, eventData(t, rec.Events))
	evs, err = p.LoadEvents(ctx, id, 0)
	require.NoError(t, err)
	require.Equal(t, []string{"c", "d", "e"}, eventData(t, evs))

	require.NoError(t, p.Archive(ctx, id))
	var got *timebox.ArchiveRecord
	require.NoError(t, p.ConsumeArchive(ctx, func(_ context.Context, r *timebox.ArchiveRecord) error {
		got = r
		return nil
	}))
	require.Equal(t, id, got.AggregateID)
	require.Equal(t, []string{"c", "d", "e"}, eventData(t, got.Events))

	feed, err := st.ReadAll(ctx, timebox.Position{}, 100)
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b", "c", "d", "e"}, eventData(t, feed))
}

// A batch set naming a feed entry that is gone (the feed trimmed or
// deleted by hand), or that another aggregate's append took since (the
// IDs of a deleted feed start again), fails every read of it with an
// error, and a conflicting append or an archive writes nothing.
func TestMissingFeedEntry(t *testing.T) {
	p := newPersistence(t, Config{})
	ctx := context.Background()
	id := timebox.NewAggregateID("gone", "1")
	require.NoError(t, p.Append(ctx, timebox.AppendRequest{
		ID: id, Events: []*timebox.Event{event("a")},
	}))
	require.NoError(t, p.client.Del(ctx, p.keys.feed).Err())

	_, err := p.LoadEvents(ctx, id, 0)
	require.ErrorContains(t, err, "feed entry 0-1 missing")
	_, err = p.LoadSnapshot(ctx, id)
	require.ErrorContains(t, err, "feed entry 0-1 missing")
	err = p.Append(ctx, timebox.AppendRequest{
		ID: id, ExpectedSequence: 0, Events: []*timebox.Event{event("b")},
	})
	require.ErrorContains(t, err, "feed entry 0-1 missing")
	require.NotErrorIs(t, err, timebox.ErrUnknownOutcome)
	require.ErrorContains(t, p.Archive(ctx, id), "feed entry 0-1 missing")
	n, err := p.client.Exists(ctx, p.keys.feed, p.keys.archive).Result()
	require.NoError(t, err)
	require.Zero(t, n, "a failed script wrote")

	other := timebox.NewAggregateID("gone", "2")
	require.NoError(t, p.Append(ctx, timebox.AppendRequest{
		ID: other, Events: []*timebox.Event{event("c")},
	}))
	_, err = p.LoadEvents(ctx, id, 0)
	require.ErrorContains(t, err, "feed entry 0-1 missing or not this aggregate's")
	evs, err := p.LoadEvents(ctx, other, 0)
	require.NoError(t, err)
	require.Equal(t, []string{"c"}, eventData(t, evs))
}
