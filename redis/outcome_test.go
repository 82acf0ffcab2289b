package redis

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/faultproxy"
	"github.com/kode4food/timebox/internal/testserver"
)

func event(data string) *timebox.Event {
	return &timebox.Event{
		Timestamp: time.Now(),
		Type:      "test",
		Data:      json.RawMessage(`"` + data + `"`),
	}
}

// A reply lost after the append script ran must not make the client send
// it again: the backend's error is ErrUnknownOutcome and the events are
// stored once. (The Store's retries, off here, would re-send it safely;
// see the conformance Faults cases.)
func TestLostReplyAppendsOnce(t *testing.T) {
	px := faultproxy.New(t, testserver.RedisAddr(t))
	st := newStore(t, Config{Addr: px.Addr()}, timebox.Config{RetryTimeout: -1})
	id := timebox.NewAggregateID("order", "1")

	require.NoError(t, st.AppendEvents(id, 0, []*timebox.Event{event("first")}))
	px.DropNextReply()
	err := st.AppendEvents(id, 1, []*timebox.Event{event("second"), event("third")})
	require.ErrorIs(t, err, timebox.ErrUnknownOutcome)
	require.EqualValues(t, 1, px.Dropped())

	evs, err := st.GetEvents(id, 0)
	require.NoError(t, err)
	require.Len(t, evs, 3)
	for i, want := range []string{"first", "second", "third"} {
		require.EqualValues(t, i, evs[i].Sequence)
		require.JSONEq(t, `"`+want+`"`, string(evs[i].Data))
	}

	err = st.AppendEvents(id, 1, []*timebox.Event{event("second")})
	var vc *timebox.VersionConflictError
	require.ErrorAs(t, err, &vc)
	require.EqualValues(t, 3, vc.ActualSequence)
	require.Len(t, vc.NewEvents, 2)
}

// With the Store's retries off, the Executor surfaces the lost reply and
// does not run the command again.
func TestLostReplyExecRunsOnce(t *testing.T) {
	px := faultproxy.New(t, testserver.RedisAddr(t))
	// No background snapshot may take the dropped reply.
	st := newStore(t, Config{Addr: px.Addr()},
		timebox.Config{RetryTimeout: -1, SnapshotRatio: 1e9})
	id := timebox.NewAggregateID("counter")
	ex := timebox.NewExecutor(st, func() int { return 0 }, timebox.Appliers[int]{
		"test": func(n int, _ *timebox.Event) int { return n + 1 },
	})
	var runs atomic.Int32
	cmd := func(_ int, ag *timebox.Aggregator[int]) error {
		runs.Add(1)
		return timebox.Raise(ag, "test", "x")
	}

	_, err := ex.Exec(id, cmd)
	require.NoError(t, err)
	px.DropNextReply()
	runs.Store(0)
	_, err = ex.Exec(id, cmd)
	require.True(t, errors.Is(err, timebox.ErrUnknownOutcome), "got %v", err)
	require.EqualValues(t, 1, runs.Load())

	evs, err := st.GetEvents(id, 0)
	require.NoError(t, err)
	require.Len(t, evs, 2)
}

// An error raised inside a script after it began writing leaves the write
// half done, so it is an unknown outcome; the script's own checks fail
// before any write, so their errors are not.
func TestScriptErrorClass(t *testing.T) {
	p := newPersistence(t, Config{})
	ctx := context.Background()
	id := timebox.NewAggregateID("class")
	k := p.keys.aggregate(id)
	status := "open"
	req := timebox.AppendRequest{
		ID: id, Events: []*timebox.Event{event("x")},
		Index: timebox.IndexChange{Status: &status, StatusTime: time.Now()},
	}

	// The status set is a string: ZADD fails after the events are written.
	require.NoError(t, p.client.Set(ctx, p.keys.status, "not a set", 0).Err())
	err := p.Append(ctx, req)
	require.ErrorIs(t, err, timebox.ErrUnknownOutcome)
	require.ErrorContains(t, err, "WRONGTYPE")

	// A malformed head fails the script's check, before any write.
	require.NoError(t, p.client.Del(ctx, p.keys.status).Err())
	require.NoError(t, p.client.HSet(ctx, k.meta, "h", "x").Err())
	req.ExpectedSequence = 1
	err = p.Append(ctx, req)
	require.ErrorContains(t, err, "malformed head")
	require.NotErrorIs(t, err, timebox.ErrUnknownOutcome)
	n, err := p.client.ZCard(ctx, k.events).Result()
	require.NoError(t, err)
	require.EqualValues(t, 1, n)

	// So do sequences that are not decimal: the script stores them as
	// given, and checks them before it writes.
	require.NoError(t, p.client.HSet(ctx, k.meta, "h", "1").Err())
	for _, args := range [][]any{
		{k.eid, "1", "1.0", "2", "1:x"},
		{k.eid, "1", "1", "2e0", "1:x"},
		{k.eid, "x", "1", "2", "1:x"},
		{k.eid, "01", "1", "2", "1:x"}, // the head is "1"
		{k.eid, "1", "1", "2", "1:x", "s", "open"},
	} {
		_, err = p.run(ctx, appendScript, true, p.appendKeys(k, 1, timebox.IndexChange{}), args...)
		require.ErrorContains(t, err, "malformed arguments", "%q", args)
		require.NotErrorIs(t, p.writeError("append", err), timebox.ErrUnknownOutcome)
	}
	n, err = p.client.XLen(ctx, p.keys.feed).Result()
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
}
