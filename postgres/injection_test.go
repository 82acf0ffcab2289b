package postgres_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/postgres"
)

// hostile is text that would break out of a string literal or statement
// if it were ever spliced into SQL.
const hostile = `x'; DROP TABLE timebox_events; --"$1\;`

// TestHostileTextRoundTrip stores a Prefix, ID parts, an event type, a
// status and a label that hold quotes, semicolons and SQL, and reads each
// back verbatim, leaving the tables intact.
func TestHostileTextRoundTrip(t *testing.T) {
	cfg := testConfig(t)
	cfg.Prefix += hostile
	t.Cleanup(func() { dropPrefix(t, cfg.URL, cfg.Prefix) })
	status := "st" + hostile
	label, value := "lb"+hostile, "v"+hostile
	s, err := newPersistence(t, cfg).NewStore(timebox.Config{
		Indexer: func([]*timebox.Event) []*timebox.Index {
			return []*timebox.Index{{
				Status: &status,
				Labels: map[string]string{label: value},
			}}
		},
	})
	require.NoError(t, err)

	id := timebox.NewAggregateID(hostile, "'", ";", "a'); DELETE FROM timebox_index; --")
	data, err := json.Marshal(map[string]string{"q": hostile})
	require.NoError(t, err)
	ev := &timebox.Event{Type: timebox.EventType(hostile), Data: data}
	require.NoError(t, s.AppendEvents(id, 0, []*timebox.Event{ev}))
	require.NoError(t, s.PutSnapshot(id, hostile, 1))

	evs, err := s.GetEvents(id, 0)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	require.Equal(t, timebox.EventType(hostile), evs[0].Type)
	require.Equal(t, json.RawMessage(data), evs[0].Data)
	require.Equal(t, id, evs[0].AggregateID)

	var snap string
	_, err = s.GetSnapshot(id, &snap)
	require.NoError(t, err)
	require.Equal(t, hostile, snap)

	got, err := s.GetAggregateStatus(id)
	require.NoError(t, err)
	require.Equal(t, status, got)
	entries, err := s.ListAggregatesByStatus(status)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	require.Equal(t, id, entries[0].ID)

	values, err := s.ListLabelValues(label)
	require.NoError(t, err)
	require.Equal(t, []string{value}, values)
	ids, err := s.ListAggregatesByLabel(label, value)
	require.NoError(t, err)
	require.Equal(t, []timebox.AggregateID{id}, ids)

	ids, err = s.ListAggregates(timebox.NewAggregateID(hostile, "'"))
	require.NoError(t, err)
	require.Equal(t, []timebox.AggregateID{id}, ids)

	requireTablesIntact(t, cfg)
}

// TestPrefixesIsolated checks that stores on different Prefixes sharing
// the tables never see each other's rows.
func TestPrefixesIsolated(t *testing.T) {
	a := newStore(t, timebox.Config{})
	b := newStore(t, timebox.Config{})
	id := timebox.NewAggregateID("shared")
	ev := &timebox.Event{Type: "t", Data: []byte(`1`)}
	require.NoError(t, a.AppendEvents(id, 0, []*timebox.Event{ev}))
	require.NoError(t, b.AppendEvents(id, 0, []*timebox.Event{ev, ev}))

	evs, err := a.GetEvents(id, 0)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	ids, err := b.ListAggregates(nil)
	require.NoError(t, err)
	require.Equal(t, []timebox.AggregateID{id}, ids)
}

func requireTablesIntact(t *testing.T, cfg postgres.Config) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, cfg.URL)
	require.NoError(t, err)
	defer func() { _ = conn.Close(ctx) }()
	for table, want := range map[string]int{
		"timebox_events": 1, "timebox_snapshot": 1, "timebox_index": 2,
	} {
		var n int
		err := conn.QueryRow(ctx,
			"SELECT count(*) FROM "+table+" WHERE ns = $1", cfg.Prefix,
		).Scan(&n)
		require.NoError(t, err)
		require.Equal(t, want, n, table)
	}
}
