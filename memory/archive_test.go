package memory_test

import (
	"context"
	"encoding/json"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/memory"
)

// A handler that panics or calls runtime.Goexit leaves the record for the
// next consumer, as a handler error does.
func TestConsumeArchiveHandlerPanicKeepsRecord(t *testing.T) {
	st, err := memory.NewPersistence().NewStore(timebox.Config{})
	require.NoError(t, err)
	defer func() { _ = st.Close() }()
	id := timebox.NewAggregateID("order", "1")
	require.NoError(t, st.AppendEvents(id, 0, []*timebox.Event{{
		Timestamp: time.Now(), Type: "created", Data: json.RawMessage(`{}`),
	}}))
	require.NoError(t, st.Archive(id))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.PanicsWithValue(t, "boom", func() {
		_ = st.ConsumeArchive(ctx, func(context.Context, *timebox.ArchiveRecord) error {
			panic("boom")
		})
	})

	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = st.ConsumeArchive(ctx, func(context.Context, *timebox.ArchiveRecord) error {
			runtime.Goexit() // what t.FailNow does in a handler
			return nil
		})
	}()
	<-done

	var got *timebox.ArchiveRecord
	require.NoError(t, st.ConsumeArchive(ctx,
		func(_ context.Context, r *timebox.ArchiveRecord) error {
			got = r
			return nil
		},
	))
	require.True(t, id.Equal(got.AggregateID))
	require.Len(t, got.Events, 1)
}
