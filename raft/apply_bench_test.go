package raft

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/bench"
)

// BenchmarkApply is the state machine's share of an append: ApplyBatch of
// batches of 64 entries, each a non-empty append of 1 event (as
// exec-spread writes) or of 100 (as append-batch writes) to one of 1,000
// aggregates, on a state file in a temporary directory. It leaves out the
// Raft log, the network and fsync, so it shows what the state file write
// (the feed's included) costs.
func BenchmarkApply(b *testing.B) {
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprintf("events-%d", n), func(b *testing.B) {
			stop := make(chan struct{})
			defer close(stop)
			f, err := openFSM(b.TempDir(), nil, slog.Default(), newHealth(slog.Default()), stop)
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = f.close() }()
			heads := make([]int64, 1000)
			evs := make([]*timebox.Event, n)
			for i := range evs {
				evs[i] = &timebox.Event{
					Timestamp: time.Now(), Type: "bench", Data: bench.Payload("apply"),
				}
			}
			const batch = 64
			idx := uint64(0)
			b.ResetTimer()
			for i := 0; i < b.N; i += batch {
				b.StopTimer()
				logs := make([]*hraft.Log, 0, batch)
				for j := i; j < min(i+batch, b.N); j++ {
					a := j % len(heads)
					idx++
					logs = append(logs, &hraft.Log{
						Index: idx, Type: hraft.LogCommand,
						Data: encodeAppend(timebox.AppendRequest{
							ID:               timebox.NewAggregateID("agg", timebox.ID(fmt.Sprint(a))),
							ExpectedSequence: heads[a], Events: evs,
						}),
					})
					heads[a] += int64(n)
				}
				b.StartTimer()
				for _, r := range f.ApplyBatch(logs) {
					if r != nil {
						b.Fatal(r)
					}
				}
			}
		})
	}
}
