package redis

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/bench"
	"github.com/kode4food/timebox/internal/codec"
)

// BenchmarkWorkloads runs the shared SPEC §8 workloads on the server from
// TIMEBOX_REDIS_ADDR.
func BenchmarkWorkloads(b *testing.B) {
	bench.Run(b, func(b *testing.B, cfg timebox.Config) *timebox.Store {
		return newStore(b, Config{}, cfg)
	})
}

// BenchmarkRaw is the baseline the workloads are judged against, in the
// same run: EVALSHA of a one-INCR script through go-redis, by 1 and 16
// clients.
func BenchmarkRaw(b *testing.B) {
	for _, clients := range []int{1, 16} {
		b.Run(fmt.Sprintf("evalsha-incr/clients=%d", clients), func(b *testing.B) {
			p := newPersistence(b, Config{})
			incr := redis.NewScript(`return redis.call('INCR', KEYS[1])`)
			key := p.keys.base + "raw"
			ctx := context.Background()
			if err := incr.Load(ctx, p.client).Err(); err != nil {
				b.Fatal(err)
			}
			timed(b, clients, "ops/s", 1, func() error {
				return incr.EvalSha(ctx, p.client, []string{key}).Err()
			})
		})
	}
}

// BenchmarkLoadVsRaw compares GetEvents of 2,000 stored events (20
// batches of 100) with raw reads in the same run: XRANGE of the 20 feed
// entries that hold the batches (load.lua reads them one by one, by the
// IDs in the batch set) and LRANGE of a list holding the 2,000 event
// records one per element, both through go-redis's ordinary string
// replies, and the decoding alone.
func BenchmarkLoadVsRaw(b *testing.B) {
	const size = 2000
	p := newPersistence(b, Config{})
	st, err := p.NewStore(timebox.Config{})
	if err != nil {
		b.Fatal(err)
	}
	id := timebox.NewAggregateID("load")
	for seq := int64(0); seq < size; seq += 100 {
		evs := make([]*timebox.Event, 100)
		for j := range evs {
			evs[j] = &timebox.Event{
				Timestamp: time.Now(), Type: "bench",
				Data: bench.Payload(strconv.FormatInt(seq+int64(j), 10)),
			}
		}
		if err := st.AppendEvents(id, seq, evs); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	batches, err := p.client.XRange(ctx, p.keys.feed, "-", "+").Result()
	if err != nil {
		b.Fatal(err)
	}
	var vals []string
	for _, m := range batches {
		recs, err := unframe(m.Values["b"].(string))
		if err != nil {
			b.Fatal(err)
		}
		vals = append(vals, recs...)
	}
	list := p.keys.base + "rawlist"
	if err := p.client.RPush(ctx, list, toAny(vals)...).Err(); err != nil {
		b.Fatal(err)
	}
	checkN := func(want int) func(int, error) error {
		return func(n int, err error) error {
			if err == nil && n != want {
				err = fmt.Errorf("read %d values, want %d", n, want)
			}
			return err
		}
	}
	check := checkN(size)

	b.Run("get-events", func(b *testing.B) {
		timed(b, 1, "loads/s", 1, func() error {
			evs, err := st.GetEvents(id, 0)
			return check(len(evs), err)
		})
	})
	b.Run("raw-xrange", func(b *testing.B) {
		timed(b, 1, "loads/s", 1, func() error {
			v, err := p.client.XRange(ctx, p.keys.feed, "-", "+").Result()
			return checkN(len(batches))(len(v), err)
		})
	})
	b.Run("raw-lrange", func(b *testing.B) {
		timed(b, 1, "loads/s", 1, func() error {
			v, err := p.client.LRange(ctx, list, 0, -1).Result()
			return check(len(v), err)
		})
	})
	b.Run("decode-only", func(b *testing.B) {
		timed(b, 1, "loads/s", 1, func() error {
			_, err := codec.DecodeEvents(id, vals)
			return err
		})
	})
}

func toAny(vals []string) []any {
	res := make([]any, len(vals))
	for i, v := range vals {
		res[i] = v
	}
	return res
}

// timed splits b.N calls of op over clients goroutines and reports the
// rate and the p50 and p99 latency, as internal/bench does.
func timed(b *testing.B, clients int, unit string, perOp int, op func() error) {
	bench.Measure(b, clients, perOp, unit, func(int, int) error { return op() })
}

// BenchmarkSeqVsRaw alternates, call by call, one Exec raising one event
// with one raw EVALSHA of the one-INCR script (bench.SeqVsRaw), with the
// default SnapshotRatio and with snapshots off (bench.NoSnapshots).
func BenchmarkSeqVsRaw(b *testing.B) {
	for _, ratio := range []float64{0, bench.NoSnapshots} {
		b.Run(snapshotsName(ratio), func(b *testing.B) {
			p := newPersistence(b, Config{})
			st, err := p.NewStore(timebox.Config{SnapshotRatio: ratio})
			if err != nil {
				b.Fatal(err)
			}
			incr := redis.NewScript(`return redis.call('INCR', KEYS[1])`)
			ctx := context.Background()
			if err := incr.Load(ctx, p.client).Err(); err != nil {
				b.Fatal(err)
			}
			bench.SeqVsRaw(b, st, func() error {
				return incr.EvalSha(ctx, p.client, []string{p.keys.base + "raw"}).Err()
			})
		})
	}
}

func snapshotsName(ratio float64) string {
	if ratio == 0 {
		return "snapshots=default"
	}
	return "snapshots=off"
}

// BenchmarkServerTime measures what an append costs the Redis server
// itself, without client or network time: it runs b.N appends of the
// given shape on a private redis-server (so no other client's commands
// are counted), then reads INFO commandstats and reports the server's
// microseconds per EVALSHA (server-µs/op, the whole script with the
// commands it calls), beside a one-INCR EVALSHA run the same way
// (raw-incr).
func BenchmarkServerTime(b *testing.B) {
	serverBench(b, startServer(b, ""), serverTime)
}

// BenchmarkServerInstructions runs BenchmarkServerTime's shapes on a
// private redis-server under valgrind's callgrind, and reports the
// instructions the server process executed per call (server-instr/op):
// a count, not a time, so it is the same on a loaded machine, and two
// versions of a script compare exactly. The count covers everything the
// server did from the first call to the last (reading and parsing the
// request, the script, the reply, and its timers, which tick more often
// per call under valgrind's slowdown). It needs valgrind and
// callgrind_control on PATH (Debian's valgrind package), and is skipped
// without them; valgrind slows the server about 50 times, so give it a
// count:
//
//	go test -run '^$' -bench BenchmarkServerInstructions -benchtime 5000x ./redis/
func BenchmarkServerInstructions(b *testing.B) {
	addr, measure := startCallgrindServer(b)
	serverBench(b, addr, measure)
}

// serverBench runs the server benchmarks' shapes, each measured by
// measure: appends of one event, of one event with an index change, of 100
// events, and a one-INCR EVALSHA (raw-incr) for scale.
func serverBench(b *testing.B, addr string, measure func(*testing.B, *Persistence, func(int) error)) {
	ctx := context.Background()
	open := "open"
	shapes := []struct {
		name  string
		batch int
		index timebox.IndexChange
	}{
		{"append-1", 1, timebox.IndexChange{}},
		{"append-1-indexed", 1, timebox.IndexChange{
			Status: &open, Labels: map[string]string{"region": "eu"},
		}},
		{"append-100", 100, timebox.IndexChange{}},
	}
	for _, s := range shapes {
		b.Run(s.name, func(b *testing.B) {
			p := newPersistence(b, Config{Addr: addr})
			id := timebox.NewAggregateID("server", timebox.ID(strconv.Itoa(b.N)))
			evs := make([]*timebox.Event, s.batch)
			for i := range evs {
				evs[i] = &timebox.Event{
					Timestamp: time.Now(), Type: "bench",
					Data: bench.Payload(strconv.Itoa(i)),
				}
			}
			measure(b, p, func(i int) error {
				s.index.StatusTime = time.Now()
				return p.Append(ctx, timebox.AppendRequest{
					ID: id, ExpectedSequence: int64(i * s.batch),
					Events: evs, Index: s.index,
				})
			})
		})
	}
	b.Run("raw-incr", func(b *testing.B) {
		p := newPersistence(b, Config{Addr: addr})
		incr := redis.NewScript(`return redis.call('INCR', KEYS[1])`)
		if err := incr.Load(ctx, p.client).Err(); err != nil {
			b.Fatal(err)
		}
		key := p.keys.base + "raw"
		measure(b, p, func(int) error {
			return incr.EvalSha(ctx, p.client, []string{key}).Err()
		})
	})
}

// startCallgrindServer starts a private redis-server under callgrind, and
// returns its address and a measure function for serverBench: it zeroes
// the server's counts, runs the calls, dumps the counts and reports their
// total per call.
func startCallgrindServer(b *testing.B) (string, func(*testing.B, *Persistence, func(int) error)) {
	vg, err1 := exec.LookPath("valgrind")
	ctl, err2 := exec.LookPath("callgrind_control")
	if err1 != nil || err2 != nil {
		b.Skip("valgrind and callgrind_control must be on PATH")
	}
	out := filepath.Join(b.TempDir(), "callgrind.out")
	addr, proc := runServer(b, []string{
		vg, "--tool=callgrind", "--callgrind-out-file=" + out, "--dump-instr=no",
	}, "")
	pid := strconv.Itoa(proc.Pid)
	control := func(b *testing.B, arg string) {
		if out, err := exec.Command(ctl, arg, pid).CombinedOutput(); err != nil {
			b.Fatalf("callgrind_control %s: %v: %s", arg, err, out)
		}
	}
	dumps := 0
	return addr, func(b *testing.B, _ *Persistence, op func(int) error) {
		control(b, "--zero")
		b.ResetTimer()
		for i := range b.N {
			if err := op(i); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		control(b, "--dump")
		dumps++
		data, err := os.ReadFile(fmt.Sprintf("%s.%d", out, dumps))
		if err != nil {
			b.Fatal(err)
		}
		total, ok := callgrindTotal(string(data))
		if !ok {
			b.Fatalf("no summary line in callgrind dump %d", dumps)
		}
		bench.Report(b, float64(total)/float64(b.N), "server-instr/op")
	}
}

// callgrindTotal returns the event total of a callgrind dump (its
// "summary:" line; "totals:" in some versions).
func callgrindTotal(dump string) (int64, bool) {
	for line := range strings.Lines(dump) {
		for _, p := range []string{"summary:", "totals:"} {
			if v, ok := strings.CutPrefix(line, p); ok {
				n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				return n, err == nil
			}
		}
	}
	return 0, false
}

// BenchmarkServerCPU measures the server process's whole CPU time (user
// and system, network handling included, from INFO cpu) per exec-seq
// command on a private redis-server, with the default SnapshotRatio and
// with snapshots off, beside a one-INCR EVALSHA run the same way
// (raw-incr). It reports server-cpu-µs/op. Close waits for background
// snapshots, so their CPU is counted.
func BenchmarkServerCPU(b *testing.B) {
	addr := startServer(b, "")
	ctx := context.Background()
	for _, ratio := range []float64{0, bench.NoSnapshots} {
		b.Run("exec-seq/"+snapshotsName(ratio), func(b *testing.B) {
			p := newPersistence(b, Config{Addr: addr})
			st, err := p.NewStore(timebox.Config{SnapshotRatio: ratio})
			if err != nil {
				b.Fatal(err)
			}
			info := newPersistence(b, Config{Addr: addr}) // st.Close closes p
			ex := timebox.NewExecutor(st, func() int { return 0 }, timebox.Appliers[int]{
				"bench": func(n int, _ *timebox.Event) int { return n + 1 },
			})
			id := timebox.NewAggregateID("cpu", timebox.ID(strconv.Itoa(b.N)))
			serverCPU(b, info, func(i int) error {
				data := bench.Payload(strconv.Itoa(i))
				_, err := ex.Exec(id, func(_ int, ag *timebox.Aggregator[int]) error {
					return timebox.Raise(ag, "bench", data)
				})
				return err
			}, func() error { return st.Close() })
		})
	}
	b.Run("raw-incr", func(b *testing.B) {
		p := newPersistence(b, Config{Addr: addr})
		incr := redis.NewScript(`return redis.call('INCR', KEYS[1])`)
		if err := incr.Load(ctx, p.client).Err(); err != nil {
			b.Fatal(err)
		}
		key := p.keys.base + "raw"
		serverCPU(b, p, func(int) error {
			return incr.EvalSha(ctx, p.client, []string{key}).Err()
		}, func() error { return nil })
	})
}

// serverCPU runs op b.N times, then done, and reports the server's CPU
// time (INFO cpu, user plus system, read through p) over them per op.
func serverCPU(b *testing.B, p *Persistence, op func(i int) error, done func() error) {
	ctx := context.Background()
	cpu := func() float64 {
		info, err := p.client.Info(ctx, "cpu").Result()
		if err != nil {
			b.Fatal(err)
		}
		var sum float64
		for line := range strings.Lines(info) {
			k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
			if k == "used_cpu_sys" || k == "used_cpu_user" {
				f, _ := strconv.ParseFloat(v, 64)
				sum += f
			}
		}
		return sum
	}
	before := cpu()
	b.ResetTimer()
	for i := range b.N {
		if err := op(i); err != nil {
			b.Fatal(err)
		}
	}
	if err := done(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	bench.Report(b, (cpu()-before)*1e6/float64(b.N), "server-cpu-µs/op")
}

// serverTime runs op b.N times between a CONFIG RESETSTAT and a read of
// the server's EVALSHA statistics, and reports them.
func serverTime(b *testing.B, p *Persistence, op func(i int) error) {
	ctx := context.Background()
	if err := p.client.ConfigResetStat(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		if err := op(i); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	stats, err := p.client.Info(ctx, "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	calls, usec := evalshaStats(stats)
	if calls < int64(b.N) {
		b.Fatalf("server counted %d EVALSHA calls, want %d:\n%s", calls, b.N, stats)
	}
	bench.Report(b, float64(usec)/float64(calls), "server-µs/op")
	if os.Getenv("TIMEBOX_COMMANDSTATS") == "1" {
		b.Log(stats)
	}
}

// evalshaStats returns the calls and microseconds of EVALSHA in an INFO
// commandstats reply.
func evalshaStats(info string) (calls, usec int64) {
	for line := range strings.Lines(info) {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_evalsha:")
		if !ok {
			continue
		}
		for f := range strings.SplitSeq(rest, ",") {
			k, v, _ := strings.Cut(f, "=")
			n, _ := strconv.ParseInt(v, 10, 64)
			switch k {
			case "calls":
				calls = n
			case "usec":
				usec = n
			}
		}
	}
	return calls, usec
}

// benchTargets are issue 14's targets for Redis, printed after a run that
// measured their figures (make bench).
var benchTargets = []bench.Target{
	{
		Name: "exec-seq/raw (1 client)",
		Of:   bench.Figure("BenchmarkWorkloads/exec-seq", "cmds/s"),
		Over: bench.Figure("BenchmarkRaw/evalsha-incr/clients=1", "ops/s"),
		Min:  0.8,
	},
	{
		Name: "exec-spread/raw (16 clients)",
		Of:   bench.Figure("BenchmarkWorkloads/exec-spread", "cmds/s"),
		Over: bench.Figure("BenchmarkRaw/evalsha-incr/clients=16", "ops/s"),
		Min:  0.6,
	},
	{
		Name: "exec-contended failed",
		Of:   bench.Figure("BenchmarkWorkloads/exec-contended", "failed"),
		Max:  0, MaxZero: true,
	},
	{
		Name: "exec-seq/raw interleaved (SeqVsRaw, snapshots off)",
		Of:   bench.Figure("BenchmarkSeqVsRaw/snapshots=off", "exec/raw"),
		Min:  0.8,
	},
	{
		Name: "server µs per 1-event append",
		Of:   bench.Figure("BenchmarkServerTime/append-1", "server-µs/op"),
		Max:  6,
	},
	{
		Name: "server CPU per exec-seq / per raw EVALSHA (default snapshots)",
		Of:   bench.Figure("BenchmarkServerCPU/exec-seq/snapshots=default", "server-cpu-µs/op"),
		Over: bench.Figure("BenchmarkServerCPU/raw-incr", "server-cpu-µs/op"),
		Max:  1.3,
	},
	{
		Name: "server CPU per exec-seq / per raw EVALSHA (snapshots off)",
		Of:   bench.Figure("BenchmarkServerCPU/exec-seq/snapshots=off", "server-cpu-µs/op"),
		Over: bench.Figure("BenchmarkServerCPU/raw-incr", "server-cpu-µs/op"),
		Max:  1.3,
	},
	{
		Name: "server µs per 100-event append",
		Of:   bench.Figure("BenchmarkServerTime/append-100", "server-µs/op"),
		Max:  60,
	},
}
