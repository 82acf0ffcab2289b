package redis

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
)

// A batch is one stored member. Reads from inside a batch, and a trim
// floor inside one, drop exactly the events below them: in LoadEvents, in
// a conflict's NewEvents and in the archive record.
func TestBatchStraddlesTrim(t *testing.T) {
	p := newPersistence(t, Config{})
	st, err := p.NewStore(timebox.Config{TrimEvents: true})
	require.NoError(t, err)
	id := timebox.NewAggregateID("batch")
	evs := []*timebox.Event{event("0"), event("1"), event("2"), event("3"), event("4")}
	require.NoError(t, st.AppendEvents(id, 0, evs))
	seqs := func(evs []*timebox.Event) []int64 {
		res := []int64{}
		for _, ev := range evs {
			res = append(res, ev.Sequence)
		}
		return res
	}
	got, err := st.GetEvents(id, 2)
	require.NoError(t, err)
	require.Equal(t, []int64{2, 3, 4}, seqs(got))
	require.JSONEq(t, `"2"`, string(got[0].Data))

	require.NoError(t, st.PutSnapshot(id, "at3", 3))
	n, err := p.client.ZCard(context.Background(), p.keys.aggregate(id).events).Result()
	require.NoError(t, err)
	require.EqualValues(t, 1, n, "the straddling batch is kept")
	for from, want := range map[int64][]int64{0: {3, 4}, 3: {3, 4}, 4: {4}, 5: {}} {
		got, err := st.GetEvents(id, from)
		require.NoError(t, err)
		require.Equal(t, want, seqs(got), "from %d", from)
	}

	err = st.AppendEvents(id, 1, []*timebox.Event{event("x")})
	var vc *timebox.VersionConflictError
	require.ErrorAs(t, err, &vc)
	require.EqualValues(t, 5, vc.ActualSequence)
	require.Equal(t, []int64{3, 4}, seqs(vc.NewEvents))

	require.NoError(t, st.AppendEvents(id, 5, []*timebox.Event{event("5"), event("6")}))
	got, err = st.GetEvents(id, 0)
	require.NoError(t, err)
	require.Equal(t, []int64{3, 4, 5, 6}, seqs(got))

	require.NoError(t, st.Archive(id))
	require.NoError(t, st.ConsumeArchive(context.Background(),
		func(_ context.Context, r *timebox.ArchiveRecord) error {
			require.Equal(t, []int64{3, 4, 5, 6}, seqs(r.Events))
			require.JSONEq(t, `"3"`, string(r.Events[0].Data))
			return nil
		}))
}
