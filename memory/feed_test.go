package memory

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
)

// TestFeedAcrossChunks appends commits of one to three events over more
// than two of the feed's chunks and reads the whole feed back from every
// kind of position (before a commit, inside one, past its last event)
// with limits that end pages inside commits and across chunk edges.
func TestFeedAcrossChunks(t *testing.T) {
	p := NewPersistence()
	ctx := context.Background()
	commits := 2*feedChunk + 7
	heads := map[string]int64{}
	var want []timebox.Position
	for c := range commits {
		name := fmt.Sprint("agg-", c%5)
		n := c%3 + 1
		evs := make([]*timebox.Event, n)
		for i := range evs {
			evs[i] = &timebox.Event{
				ID:       fmt.Sprint(c, "-", i),
				Type:     "t",
				Sequence: heads[name] + int64(i),
				Data:     []byte(`{}`),
			}
			want = append(want, timebox.Position{
				Commit: uint64(c + 1), Offset: uint64(i),
			})
		}
		require.NoError(t, p.Append(ctx, timebox.AppendRequest{
			ID:               timebox.NewAggregateID(timebox.ID(name)),
			ExpectedSequence: heads[name],
			Events:           evs,
		}))
		heads[name] += int64(n)
	}

	for _, limit := range []int{1, 2, 100, feedChunk + 3, len(want) + 1} {
		var got []timebox.Position
		after := timebox.Position{}
		for {
			evs, err := p.ReadFeed(ctx, timebox.FeedRequest{After: after, Limit: limit})
			require.NoError(t, err)
			require.LessOrEqual(t, len(evs), limit)
			if len(evs) == 0 {
				break
			}
			for _, ev := range evs {
				require.Equal(t, fmt.Sprint(ev.Position.Commit-1, "-", ev.Position.Offset), ev.ID)
				got = append(got, ev.Position)
			}
			require.LessOrEqual(t, len(got), len(want), "limit %d: read past the end", limit)
			after = evs[len(evs)-1].Position
		}
		require.Equal(t, want, got, "limit %d", limit)
	}

	// Past a commit's last event, the next read starts at the next commit,
	// here the first of the second chunk.
	evs, err := p.ReadFeed(ctx, timebox.FeedRequest{
		After: timebox.Position{Commit: feedChunk, Offset: 1<<64 - 1}, Limit: 1,
	})
	require.NoError(t, err)
	require.Len(t, evs, 1)
	require.Equal(t, timebox.Position{Commit: feedChunk + 1}, evs[0].Position)
}
