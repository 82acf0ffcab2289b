package redis

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
)

func noHandler(t *testing.T) timebox.ArchiveHandler {
	return func(_ context.Context, r *timebox.ArchiveRecord) error {
		t.Errorf("handler called for %q", r.AggregateID)
		return nil
	}
}

// A malformed entry is reported, acknowledged so consumers move on, and
// left in the stream for inspection.
func TestArchiveMalformed(t *testing.T) {
	p := newPersistence(t, Config{})
	st, err := p.NewStore(timebox.Config{})
	require.NoError(t, err)
	ctx := context.Background()
	bad := []map[string]any{
		{"junk": "1"},
		{"id": "%zz", "snapshot": "", "sequence": "0", "events": ""},
		{"id": "a", "snapshot": "", "sequence": "x", "events": ""},
		{"id": "a", "snapshot": "", "sequence": "0", "events": "9:short"},
		{"id": "a", "snapshot": "", "sequence": "0", "events": "3:bad"},
	}
	for _, v := range bad {
		require.NoError(t, p.client.XAdd(ctx, &redis.XAddArgs{
			Stream: p.keys.archive, Values: v,
		}).Err())
	}
	for range bad {
		err := st.ConsumeArchive(ctx, noHandler(t))
		require.ErrorIs(t, err, timebox.ErrArchiveRecordMalformed)
	}

	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, st.ConsumeArchive(short, noHandler(t)), context.DeadlineExceeded)
	n, err := p.client.XLen(ctx, p.keys.archive).Result()
	require.NoError(t, err)
	require.EqualValues(t, len(bad), n)
}

// An entry a consumer took but never acknowledged (it crashed) goes to
// another consumer once it has been idle for MinIdle.
func TestArchiveReclaim(t *testing.T) {
	cfg := testConfig(t, Config{MinIdle: 50 * time.Millisecond})
	crashed, err := NewPersistence(cfg)
	require.NoError(t, err)
	defer func() { _ = crashed.Close() }()
	st, err := crashed.NewStore(timebox.Config{})
	require.NoError(t, err)
	id := timebox.NewAggregateID("order", "7")
	require.NoError(t, st.AppendEvents(id, 0, []*timebox.Event{event("a")}))
	require.NoError(t, st.Archive(id))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msg, err := crashed.nextArchive(ctx)
	require.NoError(t, err)

	other, err := NewPersistence(cfg)
	require.NoError(t, err)
	defer func() { _ = other.Close() }()
	var got *timebox.ArchiveRecord
	require.NoError(t, other.ConsumeArchive(ctx, func(_ context.Context, r *timebox.ArchiveRecord) error {
		got = r
		return nil
	}))
	require.Equal(t, msg.ID, got.StreamID)
	require.True(t, id.Equal(got.AggregateID))
	require.Len(t, got.Events, 1)

	n, err := other.client.XLen(ctx, other.keys.archive).Result()
	require.NoError(t, err)
	require.Zero(t, n, "acknowledged entry still in the stream")
}

// Every key of a sharded store carries the {Shard} hash tag right after
// the prefix, and no ID can add another brace.
func TestKeysCarryHashTag(t *testing.T) {
	p := newPersistence(t, Config{Shard: "s1"})
	indexer := func([]*timebox.Event) []*timebox.Index {
		s := "open{x}"
		return []*timebox.Index{{Status: &s, Labels: map[string]string{"k}": "v{"}}}
	}
	st, err := p.NewStore(timebox.Config{Indexer: indexer})
	require.NoError(t, err)
	ids := []timebox.AggregateID{
		timebox.NewAggregateID("{evil}", "a:b"),
		timebox.NewAggregateID("}", "{"),
	}
	for _, id := range ids {
		require.NoError(t, st.AppendEvents(id, 0, []*timebox.Event{event("x")}))
		require.NoError(t, st.PutSnapshot(id, 1, 1))
	}
	require.NoError(t, st.Archive(ids[1]))

	ctx := context.Background()
	var keys []string
	iter := p.client.Scan(ctx, 0, p.config.Prefix+":*", 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	require.NoError(t, iter.Err())
	require.NotEmpty(t, keys)
	want := p.config.Prefix + ":{s1}:"
	for _, k := range keys {
		require.True(t, strings.HasPrefix(k, want), "key %q", k)
		rest := k[len(want):]
		require.False(t, strings.ContainsAny(rest, "{}"), "key %q", k)
	}
	got, err := st.ListAggregates(nil)
	require.NoError(t, err)
	require.Equal(t, ids[:1], got)
}

// An idle entry behind more live pending entries than one XAUTOCLAIM
// scans is still reached, because each reclaim goes on where the last
// stopped.
func TestArchiveReclaimBehindLiveEntries(t *testing.T) {
	cfg := testConfig(t, Config{MinIdle: time.Minute})
	holder, err := NewPersistence(cfg)
	require.NoError(t, err)
	defer func() { _ = holder.Close() }()
	st, err := holder.NewStore(timebox.Config{})
	require.NoError(t, err)
	const n = 25
	for i := range n {
		id := timebox.NewAggregateID("order", timebox.ID(strconv.Itoa(i)))
		require.NoError(t, st.AppendEvents(id, 0, []*timebox.Event{event("a")}))
		require.NoError(t, st.Archive(id))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var last redis.XMessage
	for range n {
		last, err = holder.nextArchive(ctx)
		require.NoError(t, err)
		require.NoError(t, holder.client.XClaim(ctx, &redis.XClaimArgs{
			Stream: holder.keys.archive, Group: archiveGroup,
			Consumer: "live", Messages: []string{last.ID},
		}).Err())
	}
	// Only the last entry has been idle for long; the others are live.
	require.NoError(t, holder.client.Do(ctx, "xclaim", holder.keys.archive,
		archiveGroup, "dead", 0, last.ID, "idle", 3600000).Err())

	other, err := NewPersistence(cfg)
	require.NoError(t, err)
	defer func() { _ = other.Close() }()
	var got *timebox.ArchiveRecord
	require.NoError(t, other.ConsumeArchive(ctx, func(_ context.Context, r *timebox.ArchiveRecord) error {
		got = r
		return nil
	}))
	require.Equal(t, last.ID, got.StreamID)
}

// A ctx cancelled right after the handler succeeded still lets the
// acknowledgement through: the record is not delivered again.
func TestArchiveAckAfterCancel(t *testing.T) {
	p := newPersistence(t, Config{})
	st, err := p.NewStore(timebox.Config{})
	require.NoError(t, err)
	id := timebox.NewAggregateID("order", "9")
	require.NoError(t, st.AppendEvents(id, 0, []*timebox.Event{event("a")}))
	require.NoError(t, st.Archive(id))

	ctx, cancel := context.WithCancel(context.Background())
	require.NoError(t, st.ConsumeArchive(ctx, func(context.Context, *timebox.ArchiveRecord) error {
		cancel()
		return nil
	}))

	short, stop := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer stop()
	require.ErrorIs(t, st.ConsumeArchive(short, noHandler(t)), context.DeadlineExceeded)
	n, err := p.client.XLen(context.Background(), p.keys.archive).Result()
	require.NoError(t, err)
	require.Zero(t, n)
}
