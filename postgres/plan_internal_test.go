package postgres

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/testserver"
)

// TestPlansUseIndexes checks the generic plan of every statement, the
// plan a prepared statement keeps, in a session of the Persistence's
// pool, on tables just created (no statistics at all) and again once they
// hold a few rows and are analysed (small enough that a sequential scan
// looks cheapest), and once emptied and analysed: no statement may read a
// table by a sequential scan.
func TestPlansUseIndexes(t *testing.T) {
	ctx := context.Background()
	base := testserver.PostgresURL(t)
	schema := testserver.Prefix(t)
	admin, err := pgx.Connect(ctx, base)
	require.NoError(t, err)
	defer func() { _ = admin.Close(ctx) }()
	quoted := pgx.Identifier{schema}.Sanitize()
	_, err = admin.Exec(ctx, "CREATE SCHEMA "+quoted)
	require.NoError(t, err)
	defer func() {
		_, err := admin.Exec(ctx, "DROP SCHEMA "+quoted+" CASCADE")
		require.NoError(t, err)
	}()
	u, err := url.Parse(base)
	require.NoError(t, err)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()

	p, err := NewPersistence(Config{URL: u.String(), Prefix: "plans", MaxConns: 2})
	require.NoError(t, err)
	defer func() { _ = p.Close() }()
	pc, err := p.pool.Acquire(ctx)
	require.NoError(t, err)
	defer pc.Release()
	conn := pc.Conn()

	t.Run("fresh", func(t *testing.T) { requireIndexPlans(t, conn) })
	fill(t, p)
	_, err = conn.Exec(ctx, "ANALYZE timebox_events, timebox_snapshot, timebox_index")
	require.NoError(t, err)
	t.Run("analysed", func(t *testing.T) { requireIndexPlans(t, conn) })
	for _, table := range []string{
		"timebox_events", "timebox_snapshot", "timebox_index",
	} {
		_, err = conn.Exec(ctx, "DELETE FROM "+table)
		require.NoError(t, err)
	}
	_, err = conn.Exec(ctx, "ANALYZE timebox_events, timebox_snapshot, timebox_index")
	require.NoError(t, err)
	t.Run("emptied", func(t *testing.T) { requireIndexPlans(t, conn) })
}

func fill(t *testing.T, p *Persistence) {
	ctx := context.Background()
	status := "s"
	for i := range 200 {
		id := timebox.NewAggregateID("order", timebox.ID(fmt.Sprint(i)))
		evs := make([]*timebox.Event, 20)
		for j := range evs {
			evs[j] = &timebox.Event{
				Sequence: int64(j), Type: "t", AggregateID: id, Data: []byte(`{}`),
			}
		}
		require.NoError(t, p.Append(ctx, timebox.AppendRequest{
			ID: id, Events: evs, Index: timebox.IndexChange{
				Status: &status, Labels: map[string]string{"l": fmt.Sprint(i % 7)},
			},
		}))
	}
}

func requireIndexPlans(t *testing.T, conn *pgx.Conn) {
	ctx := context.Background()
	_, err := conn.Exec(ctx, "SET plan_cache_mode = force_generic_plan")
	require.NoError(t, err)
	defer func() {
		_, err := conn.Exec(ctx, "RESET plan_cache_mode")
		require.NoError(t, err)
	}()
	one := `'ns', 'a', 1, 0, 0, 'x'::bytea, 'x'::bytea, 1, 'i'::bytea, NULL`
	many := `'ns', 'a', 1, ARRAY[0, 0]::bigint[], ARRAY[0, 0]::integer[],
		ARRAY['x', 'x']::bytea[], ARRAY['x', 'x']::bytea[], 2,
		ARRAY['i', 'j']::bytea[], ARRAY[NULL, NULL]::bytea[]`
	index := `, 's'::bytea, 0, 0, ARRAY['l']::bytea[], ARRAY['v']::bytea[]`
	stmts := map[string]struct{ sql, args string }{
		"load_events":     {loadEventsSQL, `'ns', 'a', 0`},
		"load_snapshot":   {loadSnapshotSQL, `'ns', 'a'`},
		"head":            {headSQL, `'ns', 'a'`},
		"check_head":      {checkHeadSQL, `'ns', 'a', 0`},
		"status":          {statusSQL, `'ns', 'a'`},
		"list_status":     {listStatusSQL, `'ns', 's'::bytea`},
		"label_values":    {labelValuesSQL, `'ns', 'l'::bytea`},
		"list_label":      {listLabelSQL, `'ns', 'l'::bytea, 'v'::bytea`},
		"list_aggregates": {listAggregatesSQL, `'ns', 'a', 'a:', 'a;'`},
		"list_all":        {listAllSQL, `'ns'`},
	}
	for h, head := range []string{"next", "new"} {
		for e, evs := range []string{one, many} {
			name := fmt.Sprintf("append_%s_%d", head, e+1)
			stmts[name] = struct{ sql, args string }{appendSQL[h][e][0], evs}
			stmts[name+"_indexed"] = struct{ sql, args string }{
				appendSQL[h][e][1], evs + index,
			}
		}
	}
	for name, s := range stmts {
		_, err := conn.Exec(ctx, "PREPARE plan_check AS "+s.sql)
		require.NoError(t, err, name)
		rows, _ := conn.Query(ctx, "EXPLAIN EXECUTE plan_check("+s.args+")")
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err, name)
		plan := strings.Join(lines, "\n")
		require.NotContains(t, plan, "Seq Scan", "%s:\n%s", name, plan)
		_, err = conn.Exec(ctx, "DEALLOCATE plan_check")
		require.NoError(t, err)
	}
}
