package raft

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
)

// logRecorder is a slog.Handler that keeps every record, at every level.
type logRecorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec.Clone())
	return nil
}

func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *logRecorder) WithGroup(string) slog.Handler      { return r }

// lines returns the messages logged at level min or above.
func (r *logRecorder) lines(min slog.Level) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var res []string
	for _, rec := range r.recs {
		if rec.Level >= min {
			line := fmt.Sprintf("%s %s", rec.Level, rec.Message)
			res = append(res, line)
		}
	}
	return res
}

// A normal run of a node (start, elect, write, close) logs nothing at
// Info or above, so a service using the default handler sees no line from
// Raft; the election Raft narrates at Warn ("heartbeat timeout reached,
// starting election") is at Debug.
func TestLoggerQuietNormalRun(t *testing.T) {
	rec := &logRecorder{}
	p := newSingle(t, Config{Logger: slog.New(rec)})
	st := newStore(t, p, timebox.Config{})
	id := timebox.NewAggregateID("order", "1")
	for i := range 3 {
		require.NoError(t, st.AppendEvents(id, int64(i), items(fmt.Sprint("e", i), 1)))
	}
	require.NoError(t, p.Close())
	require.Empty(t, rec.lines(slog.LevelInfo), "lines at Info or above")
	requireLogged(t, rec, "DEBUG heartbeat timeout reached, starting election")
}

// peerDown are the lines a node logs, as errors, when a peer cannot be
// reached: while a cluster is stopped node by node, the last nodes see
// the first ones go.
var peerDown = []string{
	"ERROR failed to appendEntries to", "ERROR failed to heartbeat to",
	"ERROR failed to make requestVote RPC", "ERROR failed to make pre-vote RPC",
	"WARN failed to contact",
}

// A 3-node cluster started together, written to through every node and
// stopped logs nothing at Info or above but, as its nodes stop one by one,
// that the others cannot reach them.
func TestLoggerQuietCluster(t *testing.T) {
	rec := &logRecorder{}
	c := &cluster{t: t}
	var servers []Server
	for i := range 3 {
		servers = append(servers, Server{ID: fmt.Sprintf("n%d", i), Address: freeAddr(t)})
	}
	for i := range 3 {
		c.pubs = append(c.pubs, &pubLog{})
		c.cfgs = append(c.cfgs, Config{
			LocalID: servers[i].ID, Address: servers[i].Address,
			DataDir: t.TempDir(), Servers: servers, tuning: clusterTuning(),
			Logger: slog.New(rec),
		})
	}
	c.nodes = make([]*Persistence, 3)
	t.Cleanup(c.closeAll)
	for i := range 3 {
		c.start(i)
	}
	for i := range 3 {
		waitReady(t, c.nodes[i])
	}
	id := timebox.NewAggregateID("order", "1")
	for i := range 6 {
		require.NoError(t, c.store(i%3).AppendEvents(id, int64(i), items(fmt.Sprint("e", i), 1)))
	}
	c.closeAll()
	for _, l := range rec.lines(slog.LevelInfo) {
		require.True(t, slices.ContainsFunc(peerDown, func(p string) bool {
			return strings.HasPrefix(l, p)
		}), "unexpected line %q", l)
	}
	requireLogged(t, rec, "DEBUG heartbeat timeout reached, starting election")
}

func requireLogged(t *testing.T, rec *logRecorder, prefix string) {
	t.Helper()
	all := rec.lines(slog.LevelDebug - 8)
	require.True(t, slices.ContainsFunc(all, func(l string) bool {
		return strings.HasPrefix(l, prefix)
	}), "%q not logged: %v", prefix, all)
}

// Without Config.Logger, a node logs through slog.Default() as it is
// when the node starts.
func TestLoggerDefault(t *testing.T) {
	rec := &logRecorder{}
	old := slog.Default()
	slog.SetDefault(slog.New(rec))
	p := newSingle(t, Config{})
	slog.SetDefault(old)
	require.Same(t, rec, p.log.Handler())
	require.NoError(t, p.Close())
	require.NotEmpty(t, rec.lines(slog.LevelDebug-8))
}

func TestLoggerLevels(t *testing.T) {
	rec := &logRecorder{}
	l := newLogger(slog.New(rec))
	l.Warn("heartbeat timeout reached, starting election")
	l.Info("entering follower state")
	l.Warn("failed to contact quorum of nodes, stepping down")
	l.Error("failed to appendEntries to")
	l.Error("failed to decode incoming command", "error", net.ErrClosed)
	l.Error("failed to decode incoming command", "error", io.ErrUnexpectedEOF)
	require.Equal(t, []string{
		"DEBUG heartbeat timeout reached, starting election",
		"DEBUG entering follower state",
		"WARN failed to contact quorum of nodes, stepping down",
		"ERROR failed to appendEntries to",
		"DEBUG failed to decode incoming command",
		"ERROR failed to decode incoming command",
	}, rec.lines(slog.LevelDebug-8))
}
