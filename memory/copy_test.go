package memory_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/memory"
)

// TestBatchCopiesShareNoMemory checks that the events of a batch, which
// memory copies into one block of data, share no memory with the caller's
// events, with each other, or with the store: changing or growing one
// loaded event's data changes nothing else.
func TestBatchCopiesShareNoMemory(t *testing.T) {
	s, err := memory.NewPersistence().NewStore(timebox.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	id := timebox.NewAggregateID("copy", "1")
	in := []*timebox.Event{
		{Timestamp: time.Now(), Type: "t", Data: json.RawMessage(`"aa"`)},
		{Timestamp: time.Now(), Type: "t", Data: json.RawMessage(`"bb"`)},
		{Timestamp: time.Now(), Type: "t", Data: json.RawMessage(`"cc"`),
			Metadata: timebox.Metadata{"k": "v"}},
	}
	require.NoError(t, s.AppendEvents(id, 0, in))
	in[1].Data[1] = 'X' // the caller's data, after the append
	in[2].Metadata["k"] = "changed"

	got, err := s.GetEvents(id, 0)
	require.NoError(t, err)
	require.Len(t, got, 3)
	require.Equal(t, `"bb"`, string(got[1].Data))
	require.Equal(t, "v", got[2].Metadata["k"])

	got[0].Data = append(got[0].Data, ' ') // must not spill into got[1]
	got[0].Data[1] = 'Y'
	got[2].Metadata["k"] = "changed"
	require.Equal(t, `"bb"`, string(got[1].Data))

	again, err := s.GetEvents(id, 0)
	require.NoError(t, err)
	for i, want := range []string{`"aa"`, `"bb"`, `"cc"`} {
		require.Equal(t, want, string(again[i].Data))
	}
	require.Equal(t, "v", again[2].Metadata["k"])
}
