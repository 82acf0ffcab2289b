package timebox_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/memory"
)

type votes = map[string]int

var voteAppliers = timebox.Appliers[votes]{
	"vote": timebox.MakeApplier(func(m votes, _ *timebox.Event, k string) votes {
		res := votes{}
		for a, b := range m {
			res[a] = b
		}
		res[k]++
		return res
	}),
}

func vote(k string) timebox.Command[votes] {
	return func(_ votes, ag *timebox.Aggregator[votes]) error {
		return timebox.Raise(ag, "vote", k)
	}
}

// TestSnapshotOfStateWithEnvelopeKeys: a state whose JSON holds the keys
// of the snapshot envelope (in any case), with or without a command
// window, comes back from its snapshot exactly. The envelope was once
// recognised by its "timebox.state" key alone, case-insensitively: such a
// state failed to load, or loaded as the value under that key.
func TestSnapshotOfStateWithEnvelopeKeys(t *testing.T) {
	store, err := memory.NewPersistence().NewStore(timebox.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	for i, keys := range [][]string{
		{"alice", "timebox.state", "bob"},
		{"Timebox.State"},
		{"timebox.state", "timebox.commands"},
		{"TIMEBOX.STATE", "timebox.commands"},
	} {
		for _, cmdID := range []string{"", "req-1"} {
			id := timebox.NewAggregateID("votes", timebox.ID("w"+cmdID), timebox.ID(rune('a'+i)))
			ex := timebox.NewExecutor(store, func() votes { return votes{} }, voteAppliers)
			want := votes{}
			for _, k := range keys {
				ctx := context.Background()
				if cmdID != "" {
					ctx = timebox.WithCommandID(ctx, cmdID+k)
				}
				_, err := ex.ExecContext(ctx, id, vote(k))
				require.NoError(t, err)
				want[k]++
			}
			require.NoError(t, ex.SaveSnapshot(id))
			fresh := timebox.NewExecutor(store, func() votes { return votes{} }, voteAppliers)
			got, err := fresh.Get(id)
			require.NoError(t, err, "%q", keys)
			require.Equal(t, want, got, "%q", keys)
		}
	}
}

// TestCommandIDNotUTF8SurvivesSnapshot: a command ID that is not valid
// UTF-8 (metadata may hold any bytes) is still recognised after the
// aggregate's snapshot, by a fresh Executor, with and without trimming.
// JSON once replaced its bad byte in the snapshot's window, and the
// command ran again.
func TestCommandIDNotUTF8SurvivesSnapshot(t *testing.T) {
	for _, trim := range []bool{false, true} {
		store, err := memory.NewPersistence().NewStore(timebox.Config{TrimEvents: trim})
		require.NoError(t, err)
		id := timebox.NewAggregateID("votes", "odd")
		ctx := timebox.WithCommandID(context.Background(), "\xffreq\x00")
		ex := timebox.NewExecutor(store, func() votes { return votes{} }, voteAppliers)
		_, err = ex.ExecContext(ctx, id, vote("a"))
		require.NoError(t, err)
		require.NoError(t, ex.SaveSnapshot(id))

		fresh := timebox.NewExecutor(store, func() votes { return votes{} }, voteAppliers)
		got, err := fresh.ExecContext(ctx, id, vote("a"))
		require.NoError(t, err)
		require.Equal(t, votes{"a": 1}, got, "trim %v", trim)
		_, err = fresh.ExecContext(timebox.WithCommandID(context.Background(), "\xfereq\x00"), id, vote("a"))
		require.NoError(t, err)
		got, err = timebox.NewExecutor(store, func() votes { return votes{} }, voteAppliers).Get(id)
		require.NoError(t, err)
		require.Equal(t, votes{"a": 2}, got, "trim %v", trim)
		require.NoError(t, store.Close())
	}
}
