package raft

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	hraft "github.com/hashicorp/raft"
	"go.etcd.io/bbolt"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/bench"
	"github.com/kode4food/timebox/internal/codec"
)

// benchTuning is production's: shorter leases make a loaded machine see
// leader changes, which fail writes with ErrUnknownOutcome.
func benchTuning() *tuning {
	t := clusterTuning()
	t.leaderWait = time.Minute
	return t
}

// BenchmarkLeader runs the shared workloads on a 3-node loopback cluster,
// sending every call to the leader.
func BenchmarkLeader(b *testing.B) {
	bench.Run(b, clusterStore(func(c *cluster) int { return c.leader() }))
}

// BenchmarkFollower is BenchmarkLeader with every call sent to a follower,
// which forwards its writes.
func BenchmarkFollower(b *testing.B) {
	bench.Run(b, clusterStore(func(c *cluster) int { return c.followers()[0] }))
}

func clusterStore(pick func(*cluster) int) bench.Factory {
	return func(b *testing.B, cfg timebox.Config) *timebox.Store {
		c := startCluster(b, 3, benchTuning(), false)
		return c.store(pick(c), cfg)
	}
}

// BenchmarkFeed measures the feed on a 3-node loopback cluster: the lag
// from a command to a subscription's handler under the exec-spread load,
// with load and subscription on the leader, then on a follower (writes
// forwarded, the feed served from the follower's applied state); and a
// catch-up read on one node of feedEvents events from the start, through
// Store.ReadAll pages, against a bbolt cursor decoding the same events
// from the events bucket (events-cursor) and from the feed bucket
// (feed-cursor: ReadFeed's own work in one transaction, no pages).
func BenchmarkFeed(b *testing.B) {
	b.Run("lag-leader", func(b *testing.B) {
		bench.FeedLag(b, clusterStore(func(c *cluster) int { return c.leader() })(
			b, timebox.Config{CacheSize: 1000}))
	})
	b.Run("lag-follower", func(b *testing.B) {
		bench.FeedLag(b, clusterStore(func(c *cluster) int { return c.followers()[0] })(
			b, timebox.Config{CacheSize: 1000}))
	})
	b.Run("catch-up", func(b *testing.B) {
		p := newSingle(b, Config{})
		st := newStore(b, p, timebox.Config{})
		bench.SeedFeed(b, st, feedEvents)
		b.Run("events-cursor", func(b *testing.B) {
			bench.FeedCatchUp(b, st, timebox.Position{}, feedEvents, func(context.Context) (int, error) {
				return rawReadEvents(p)
			})
		})
		b.Run("feed-cursor", func(b *testing.B) {
			bench.FeedCatchUp(b, st, timebox.Position{}, feedEvents, func(context.Context) (int, error) {
				return rawReadFeed(p)
			})
		})
	})
}

// rawReadFeed decodes every event of p's feed in one read transaction
// with a bbolt cursor, and returns how many there were: ReadFeed's work
// without the pages and the Store.
func rawReadFeed(p *Persistence) (int, error) {
	n := 0
	err := p.fsm.view(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketFeed).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			evs, err := decodeFeedEntry(0, v, 0, math.MaxInt)
			if err != nil {
				return err
			}
			n += len(evs)
		}
		return nil
	})
	return n, err
}

// feedEvents is how many events BenchmarkFeed/catch-up reads
// (TIMEBOX_FEED_EVENTS, default 1,000,000).
var feedEvents = func() int {
	if n, err := strconv.Atoi(os.Getenv("TIMEBOX_FEED_EVENTS")); err == nil && n > 0 {
		return n
	}
	return 1_000_000
}()

// rawReadEvents decodes every stored event of p in one read transaction
// with a bbolt cursor, each aggregate's at once, and returns how many
// there were.
func rawReadEvents(p *Persistence) (int, error) {
	n := 0
	err := p.fsm.view(func(tx *bbolt.Tx) error {
		var key []byte
		var recs [][]byte
		flush := func() error {
			if len(recs) == 0 {
				return nil
			}
			id, err := codec.DecodeID(string(key))
			if err == nil {
				_, err = codec.DecodeEvents(id, recs)
			}
			n += len(recs)
			recs = recs[:0]
			return err
		}
		c := tx.Bucket(bucketEvents).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			agg := k[:len(k)-9] // key NUL seq(8)
			if !bytes.Equal(agg, key) {
				if err := flush(); err != nil {
					return err
				}
				key = agg
			}
			recs = append(recs, v)
		}
		return flush()
	})
	return n, err
}

// BenchmarkRawApply is the baseline: hraft Apply of 256-byte entries on a
// no-op state machine, with the same log store, snapshot store, transport
// and fsync settings as the backend, on a 3-node loopback cluster.
func BenchmarkRawApply(b *testing.B) {
	for _, proposers := range []int{1, 16} {
		b.Run(fmt.Sprintf("proposers-%d", proposers), func(b *testing.B) {
			leader := newRawCluster(b)
			entry := []byte(bench.Payload("raw"))
			bench.Measure(b, proposers, 1, "ops/s", func(int, int) error {
				return leader.Apply(entry, 0).Error()
			})
		})
	}
}

type noopFSM struct{}

func (noopFSM) Apply(*hraft.Log) any                 { return nil }
func (noopFSM) Snapshot() (hraft.FSMSnapshot, error) { return noopSnapshot{}, nil }
func (noopFSM) Restore(rc io.ReadCloser) error       { return rc.Close() }

type noopSnapshot struct{}

func (noopSnapshot) Persist(s hraft.SnapshotSink) error { return s.Close() }
func (noopSnapshot) Release()                           {}

// newRawCluster starts three hraft nodes on the backend's stores and
// transport and returns the leader.
func newRawCluster(b *testing.B) *hraft.Raft {
	tune := *benchTuning()
	logger := hclog.NewNullLogger()
	var servers hraft.Configuration
	var lns []net.Listener
	for i := range 3 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		lns = append(lns, ln)
		servers.Servers = append(servers.Servers, hraft.Server{
			ID: hraft.ServerID(fmt.Sprint("r", i)), Address: hraft.ServerAddress(ln.Addr().String()),
		})
	}
	var nodes []*hraft.Raft
	for i, ln := range lns {
		dir := b.TempDir()
		store, logs, err := openLogStore(dir, DefaultLogTailSize)
		if err != nil {
			b.Fatal(err)
		}
		snaps, err := hraft.NewFileSnapshotStoreWithLogger(dir, snapshotsRetain, logger)
		if err != nil {
			b.Fatal(err)
		}
		m := newMux(ln, muxConfig{})
		trans := newTransport(m, ln.Addr().String(), logger)
		conf := raftConfig(string(servers.Servers[i].ID), tune, logger)
		if err := hraft.BootstrapCluster(conf, logs, store, snaps, trans, servers); err != nil {
			b.Fatal(err)
		}
		r, err := hraft.NewRaft(conf, noopFSM{}, logs, store, snaps, trans)
		if err != nil {
			b.Fatal(err)
		}
		nodes = append(nodes, r)
		b.Cleanup(func() {
			_ = r.Shutdown().Error()
			_ = trans.Close()
			_ = m.Close()
			_ = store.Close()
		})
	}
	for {
		for _, r := range nodes {
			if r.State() == hraft.Leader {
				return r
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// benchTargets are the raft targets of BENCHMARKS.md, printed after a run
// that measured their figures (make bench).
var benchTargets = []bench.Target{
	{
		Name: "leader exec-seq/raw Apply (1 proposer)",
		Of:   bench.Figure("BenchmarkLeader/exec-seq", "cmds/s"),
		Over: bench.Figure("BenchmarkRawApply/proposers-1", "ops/s"),
		Min:  0.8,
	},
	{
		Name: "leader exec-spread/raw Apply (16 proposers)",
		Of:   bench.Figure("BenchmarkLeader/exec-spread", "cmds/s"),
		Over: bench.Figure("BenchmarkRawApply/proposers-16", "ops/s"),
		Min:  0.7,
	},
	{
		Name: "leader exec-contended failed",
		Of:   bench.Figure("BenchmarkLeader/exec-contended", "failed"),
		Max:  0, MaxZero: true,
	},
	{
		Name: "follower exec-contended failed",
		Of:   bench.Figure("BenchmarkFollower/exec-contended", "failed"),
		Max:  0, MaxZero: true,
	},
}
