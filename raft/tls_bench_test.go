package raft

import (
	"fmt"
	"testing"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/bench"
)

// BenchmarkLeaderTLS is BenchmarkLeader with every node on mutual TLS.
func BenchmarkLeaderTLS(b *testing.B) {
	bench.Run(b, tlsClusterStore(func(c *cluster) int { return c.leader() }))
}

// BenchmarkFollowerTLS is BenchmarkFollower with every node on mutual TLS:
// the forwarded writes and the Raft traffic both go over TLS.
func BenchmarkFollowerTLS(b *testing.B) {
	bench.Run(b, tlsClusterStore(func(c *cluster) int { return c.followers()[0] }))
}

func tlsClusterStore(pick func(*cluster) int) bench.Factory {
	return func(b *testing.B, cfg timebox.Config) *timebox.Store {
		ca := newTestCA(b, "bench")
		c := startTLSCluster(b, 3, benchTuning(), false, func(i int, cfg *Config) {
			cfg.TLS = ca.nodeTLS(b, fmt.Sprint("n", i))
		})
		return c.store(pick(c), cfg)
	}
}
