package raft

import (
	"fmt"
	"syscall"
	"testing"
	"time"

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

// BenchmarkTLSCPU appends one event at a time through a follower of a
// 3-node cluster, plain and over TLS, and reports the process's CPU time
// per append: all three nodes run in this process, so it is what the
// cluster spends, whatever else loads the machine.
func BenchmarkTLSCPU(b *testing.B) {
	for _, mode := range []string{"plain", "tls"} {
		b.Run(mode, func(b *testing.B) {
			ca := newTestCA(b, "bench")
			c := startTLSCluster(b, 3, benchTuning(), false, func(i int, cfg *Config) {
				if mode == "tls" {
					cfg.TLS = ca.nodeTLS(b, fmt.Sprint("n", i))
				}
			})
			st := c.store(c.followers()[0])
			id := timebox.NewAggregateID("cpu", timebox.ID(mode))
			ev := []*timebox.Event{{Type: "bench", Data: []byte(bench.Payload("cpu"))}}
			b.ResetTimer()
			before := cpuTime(b)
			for i := range b.N {
				if err := st.AppendEvents(id, int64(i), ev); err != nil {
					b.Fatal(err)
				}
			}
			cpu := cpuTime(b) - before
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
