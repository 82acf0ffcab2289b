package postgres

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// TestPagePlansUseIndexes checks that every page statement, as a generic
// plan on filled tables, reads its index from the cursor under a LIMIT:
// no sequential scan, and no sort of the whole range (only the prefix
// page sorts its at most 2×limit rows).
func TestPagePlansUseIndexes(t *testing.T) {
	ctx := context.Background()
	u := privateSchemaURL(t)
	p, err := NewPersistence(Config{URL: u, Prefix: "plans", MaxConns: 2})
	require.NoError(t, err)
	defer func() { _ = p.Close() }()
	pc, err := p.pool.Acquire(ctx)
	require.NoError(t, err)
	defer pc.Release()
	conn := pc.Conn()
	fill(t, conn)
	_, err = conn.Exec(ctx, "ANALYZE timebox_events, timebox_snapshot, timebox_index")
	require.NoError(t, err)

	for name, s := range map[string]struct {
		sql, args string
		sorts     bool
	}{
		"page_status": {pageStatusSQL, `'plans', 's3'::bytea, 0, 0, 'order:5', 101`, false},
		"page_label":  {pageLabelSQL, `'plans', 'l'::bytea, '3'::bytea, 'order:5', 101`, false},
		"page_all":    {pageAllSQL, `'plans', 'order:5', 101`, false},
		"page_aggregates": {pageAggregatesSQL,
			`'plans', 'order', 'order:5', 'order:', 'order;', 101`, true},
	} {
		_, err := conn.Exec(ctx, "SET plan_cache_mode = force_generic_plan")
		require.NoError(t, err)
		_, err = conn.Exec(ctx, "PREPARE "+name+" AS "+s.sql)
		require.NoError(t, err, name)
		rows, _ := conn.Query(ctx, "EXPLAIN EXECUTE "+name+"("+s.args+")")
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err, name)
		plan := strings.Join(lines, "\n")
		_, err = conn.Exec(ctx, "DEALLOCATE "+name+"; RESET plan_cache_mode")
		require.NoError(t, err)
		require.NotContains(t, plan, "Seq Scan", "%s:\n%s", name, plan)
		require.Contains(t, plan, "Limit", "%s:\n%s", name, plan)
		if !s.sorts {
			require.NotContains(t, plan, "Sort", "%s:\n%s", name, plan)
		}
		t.Logf("%s:\n%s", name, plan)
	}
}
