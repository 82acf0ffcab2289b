package postgres

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/testserver"
)

// TestPlansUseIndexes checks the plan every statement gets in a session
// of the Persistence's pool once its tables have grown without being
// analysed again, after it was prepared and run while they were small,
// in each state a table may be in when last analysed: fresh (never
// analysed), holding a few rows, and emptied. No statement may read a
// table by a sequential scan: a plan made for the small table must not
// outlive it. The statements inside timebox_append, planned by PL/pgSQL
// like a prepared statement's, are checked through auto_explain, whose
// plans arrive as notices.
func TestPlansUseIndexes(t *testing.T) {
	ctx := context.Background()
	u := privateSchemaURL(t)

	p, err := NewPersistence(Config{URL: u, Prefix: "plans", MaxConns: 2})
	require.NoError(t, err)
	defer func() { _ = p.Close() }()
	// A session configured as the pool's, which also keeps its notices.
	var notices []string
	cc := p.pool.Config().ConnConfig.Copy()
	cc.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		notices = append(notices, n.Message)
	}
	conn, err := pgx.ConnectConfig(ctx, cc)
	require.NoError(t, err)
	defer func() { _ = conn.Close(ctx) }()
	exec := func(sql string) {
		t.Helper()
		_, err := conn.Exec(ctx, sql)
		require.NoError(t, err, sql)
	}
	const tables = "timebox_events, timebox_snapshot, timebox_index, timebox_archive, " +
		"timebox_feed, timebox_feed_kept, timebox_consumers"

	t.Run("fresh", func(t *testing.T) { requireIndexPlans(t, conn, &notices) })
	exec("TRUNCATE " + tables)
	fillRows(t, conn, 3)
	exec("ANALYZE " + tables)
	t.Run("analysed small", func(t *testing.T) { requireIndexPlans(t, conn, &notices) })
	exec("TRUNCATE " + tables)
	exec("ANALYZE " + tables)
	t.Run("analysed empty", func(t *testing.T) { requireIndexPlans(t, conn, &notices) })
}

// planRows is how many aggregates fill writes: enough that a sequential
// scan of any table costs far more than an index lookup.
const planRows = 5000

func fill(t *testing.T, conn *pgx.Conn) {
	fillRows(t, conn, planRows)
}

// fillXid is the transaction ID fillRows writes its aggregate i's events
// under, plus i: far above any a test server's transactions reach, so the
// appends the test runs after filling never meet those rows' keys.
const fillXid = "1099511627776" // 1<<40

// fillRows writes n aggregates of 20 events each, with one of 100
// statuses and a label of 100 values, and n leased archive records, under
// the prefix "plans".
func fillRows(t *testing.T, conn *pgx.Conn, n int) {
	t.Helper()
	for _, sql := range []string{
		`INSERT INTO timebox_snapshot (ns, aggregate, head)
		 SELECT 'plans', 'order:' || i, 20 FROM generate_series(1, $1) i
		 ON CONFLICT DO NOTHING`,
		`INSERT INTO timebox_events
		     (ns, aggregate, seq, sec, nsec, type, data, xid, off)
		 SELECT 'plans', 'order:' || i, s, 0, 0, 't', '{}', ` + fillXid + ` + i, s
		 FROM generate_series(1, $1) i, generate_series(0, 19) s
		 ON CONFLICT DO NOTHING`,
		`INSERT INTO timebox_feed (ns, aggregate, seq, xid, off, n)
		 SELECT 'plans', 'order:' || i, 0, ` + fillXid + ` + i, 0, 20
		 FROM generate_series(1, $1) i
		 ON CONFLICT DO NOTHING`,
		`INSERT INTO timebox_feed_kept
		     (ns, aggregate, seq, sec, nsec, type, data, xid, off)
		 SELECT 'plans', 'trimmed:' || i, s, 0, 0, 't', '{}', i, s
		 FROM generate_series(1, $1) i, generate_series(0, 19) s
		 ON CONFLICT DO NOTHING`,
		`INSERT INTO timebox_consumers (ns, name, part, parts, xid, off, epoch)
		 SELECT 'plans', 'c' || i, p, 4, 0, 0, i
		 FROM generate_series(1, $1) i, generate_series(0, 3) p
		 ON CONFLICT DO NOTHING`,
		`INSERT INTO timebox_index (ns, aggregate, kind, name, value, sec, nsec)
		 SELECT 'plans', 'order:' || i, k, CASE k WHEN 0 THEN '' ELSE 'l' END::bytea,
		        ((CASE k WHEN 0 THEN 's' ELSE '' END) || (i % 100))::bytea, 0, 0
		 FROM generate_series(1, $1) i, generate_series(0, 1) k
		 ON CONFLICT DO NOTHING`,
		`INSERT INTO timebox_archive
		     (ns, aggregate, snapshot_seq, snapshot, seqs, secs, nsecs, types, datas,
		      leased_until)
		 SELECT 'plans', 'archived:' || i, 0, '', '{}', '{}', '{}', '{}', '{}',
		        now() + interval '1 hour'
		 FROM generate_series(1, $1) i`,
	} {
		_, err := conn.Exec(context.Background(), sql, n)
		require.NoError(t, err)
	}
}

// requireIndexPlans prepares every statement and plans each more often
// than a generic plan takes to be chosen, runs each shape of the append
// as often, fills the tables, and fails t if a statement's plan, or one
// of the append's (collected in notices), then reads a table by a
// sequential scan.
func requireIndexPlans(t *testing.T, conn *pgx.Conn, notices *[]string) {
	stmts := map[string]struct{ sql, args string }{
		"load_events":     {loadEventsSQL, `'plans', 'order:1', 0`},
		"load_snapshot":   {loadSnapshotSQL, `'plans', 'order:1'`},
		"check_head":      {checkHeadSQL, `'plans', 'order:1', 0`},
		"status":          {statusSQL, `'plans', 'order:1'`},
		"list_status":     {listStatusSQL, `'plans', 's3'::bytea`},
		"label_values":    {labelValuesSQL, `'plans', 'l'::bytea`},
		"list_label":      {listLabelSQL, `'plans', 'l'::bytea, '3'::bytea`},
		"list_aggregates": {listAggregatesSQL, `'plans', 'order:1', 'order:1:', 'order:1;'`},
		"save_if_head":    {saveSnapshotIfHeadSQL, `'plans', 'order:1', 20, 'x'::bytea, true`},
		"archive_claim":   {archiveClaimSQL, `'plans', 1000`},
		"archive_release": {archiveReleaseSQL, `'plans', 1, 1`},
		"archive_delete":  {archiveDeleteSQL, `'plans', 1`},
		"read_feed":       {readFeedSQL, `'plans', ` + fillXid + ` + 500, 3, 100, 101`},
		"read_feed_ahead": {readFeedSQL, `'plans', ` + fillXid + ` + 500, 3, 65536, 3278`},
		"consumer_commit": {consumerCommitSQL, `'plans', 'c3', 1, 'o', 5, 6, 1000`},
	}
	ctx := context.Background()
	explain := func(name, args string) string {
		t.Helper()
		rows, _ := conn.Query(ctx, "EXPLAIN EXECUTE "+name+"("+args+")")
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err, name)
		return strings.Join(lines, "\n")
	}
	for name, s := range stmts {
		_, err := conn.Exec(ctx, "PREPARE "+name+" AS "+s.sql)
		require.NoError(t, err, name)
		defer func() {
			_, err := conn.Exec(ctx, "DEALLOCATE "+name)
			require.NoError(t, err)
		}()
		for range 6 {
			explain(name, s.args)
		}
	}
	for range 6 {
		appendPlans(t, conn, notices)
	}
	fill(t, conn)
	for name, s := range stmts {
		plan := explain(name, s.args)
		require.NotContains(t, plan, "Seq Scan", "%s:\n%s", name, plan)
	}
	for _, plan := range appendPlans(t, conn, notices) {
		require.NotContains(t, plan, "Seq Scan", "timebox_append:\n%s", plan)
	}
}

// appendPlans runs the append in each of its shapes (an existing and a
// new aggregate, one event and several, with and without an index
// change), each in a transaction it rolls back, and returns the plans of
// the statements timebox_append ran, as auto_explain reported them.
func appendPlans(t *testing.T, conn *pgx.Conn, notices *[]string) []string {
	t.Helper()
	ctx := context.Background()
	_, err := conn.Exec(ctx, "LOAD 'auto_explain'")
	require.NoError(t, err)
	*notices = nil
	now := time.Now()
	for _, a := range []struct {
		key string
		at  int64
		n   int
		ix  timebox.IndexChange
	}{
		{"order:1", 20, 1, timebox.IndexChange{}},
		{"order:2", 20, 2, timebox.IndexChange{
			Status: ptr("s1"), StatusTime: now, Labels: map[string]string{"l": "v"},
		}},
		{"order:3", 20, 1, timebox.IndexChange{
			Status: ptr(""), Labels: map[string]string{"l": ""},
		}},
		{"new:1", 0, 1, timebox.IndexChange{}},
		{"new:2", 0, 3, timebox.IndexChange{Status: ptr("s2"), StatusTime: now}},
	} {
		req := timebox.AppendRequest{ExpectedSequence: a.at, Index: a.ix}
		for i := range a.n {
			req.Events = append(req.Events, &timebox.Event{
				Type: "t", Data: []byte(`{}`), Timestamp: now, ID: fmt.Sprint(i),
			})
		}
		tx, err := conn.Begin(ctx)
		require.NoError(t, err)
		for _, sql := range []string{
			"SET LOCAL auto_explain.log_min_duration = 0",
			"SET LOCAL auto_explain.log_nested_statements = on",
			"SET LOCAL auto_explain.log_level = notice",
		} {
			_, err := tx.Exec(ctx, sql)
			require.NoError(t, err, sql)
		}
		var appended bool
		err = tx.QueryRow(ctx, appendSQL, appendArgs("plans", a.key, req, false)...).
			Scan(&appended)
		require.NoError(t, err, a.key)
		require.NoError(t, tx.Rollback(ctx))
	}
	var plans []string
	for _, n := range *notices {
		if !strings.Contains(n, "SELECT timebox_append") {
			plans = append(plans, n)
		}
	}
	// Each append that finds its head runs at least its head step, its
	// event insert and its feed row.
	require.GreaterOrEqual(t, len(plans), 9, "%q", *notices)
	return plans
}

func ptr(s string) *string { return &s }

// privateSchemaURL returns the test server's URL with search_path set to
// a schema of the test's own, created now and dropped at the test's end,
// so the test sees tables no other test shares.
func privateSchemaURL(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	base := testserver.PostgresURL(t)
	schema := testserver.Prefix(t)
	admin, err := pgx.Connect(ctx, base)
	require.NoError(t, err)
	t.Cleanup(func() { _ = admin.Close(ctx) })
	quoted := pgx.Identifier{schema}.Sanitize()
	_, err = admin.Exec(ctx, "CREATE SCHEMA "+quoted)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, err := admin.Exec(ctx, "DROP SCHEMA "+quoted+" CASCADE")
		require.NoError(t, err)
	})
	u, err := url.Parse(base)
	require.NoError(t, err)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
