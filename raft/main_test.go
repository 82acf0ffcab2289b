package raft

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kode4food/timebox/internal/bench"

	"github.com/kode4food/timebox"
)

func TestMain(m *testing.M) {
	// Raft narrates elections and lost peers, which these tests cause.
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{
		Level: slog.LevelError + 4,
	})))
	goleak.VerifyTestMain(bench.WithTargets(m, benchTargets...))
}

// waitLong bounds every wait in these tests; it is generous so that a
// slow machine never fails a test, only slows it.
const waitLong = 60 * time.Second

// waitFor polls cond every few milliseconds until it holds. It gives up
// after waitLong with an error saying what it waited for and how long, or
// with ctx's error, or with cond's.
func waitFor(ctx context.Context, what string, cond func() (bool, error)) error {
	start := time.Now()
	for {
		ok, err := cond()
		switch {
		case err != nil:
			return err
		case ok:
			return nil
		case time.Since(start) > waitLong:
			return fmt.Errorf("waited %s for %s", time.Since(start).Round(time.Millisecond), what)
		}
		t := time.NewTimer(10 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("waiting for %s (%s): %w", what,
				time.Since(start).Round(time.Millisecond), ctx.Err())
		case <-t.C:
		}
	}
}

// singleTuning makes a single node elect itself at once.
func singleTuning() *tuning {
	t := defaultTuning()
	t.heartbeatTimeout = 50 * time.Millisecond
	t.electionTimeout = 50 * time.Millisecond
	t.leaderLeaseTimeout = 50 * time.Millisecond
	t.leaderWait = waitLong
	return &t
}

// clusterTuning keeps production's election timings, so that a loaded
// machine running -race does not see spurious leader changes.
func clusterTuning() *tuning {
	t := defaultTuning()
	t.dialTimeout = time.Second
	t.leaderWait = waitLong
	return &t
}

// freeAddr returns a loopback address nothing listens on right now, and
// that it has not returned before in this process: the kernel may hand a
// port just closed out again, and two nodes of one cluster given the same
// address fail to bootstrap.
func freeAddr(t testing.TB) string {
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		require.NoError(t, ln.Close())
		if _, dup := handedOut.LoadOrStore(addr, true); !dup {
			return addr
		}
	}
}

// handedOut holds every address freeAddr has returned.
var handedOut sync.Map

// newSingle starts a ready single-node cluster in a temporary directory.
func newSingle(t testing.TB, cfg Config) *Persistence {
	cfg.tuning = singleTuning()
	if cfg.LocalID == "" {
		cfg.LocalID = "solo"
	}
	if cfg.Address == "" {
		cfg.Address = "127.0.0.1:0"
	}
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	p, err := NewPersistence(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	waitReady(t, p)
	return p
}

func waitReady(t testing.TB, p *Persistence) {
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	select {
	case <-p.Ready():
	case <-ctx.Done():
		t.Fatalf("node %s not ready after %s: state %s, leader %q, applied %d, err %v, raft %v",
			p.cfg.LocalID, waitLong, p.State(), p.Leader().ID, p.fsm.applied.Load(), p.Err(),
			p.raft.Stats())
	}
}

func newStore(t testing.TB, p *Persistence, cfg timebox.Config) *timebox.Store {
	s, err := p.NewStore(cfg)
	require.NoError(t, err)
	return s
}
