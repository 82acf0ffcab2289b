package redis

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/bench"
)

// serverTimeVariants are stripped-down append scripts, each taking
// append.lua's KEYS and ARGV for a plain append, used by
// BenchmarkServerTimeVariants to see where an append's server time goes.
// Every variant but zhead checks and moves the head in the meta hash
// (HGET, HSET) and adds the aggregate to agg on its first append; they
// differ in where the batch goes. zhead (a whole script, marked by its
// leading '!') keeps the head as a member "h" of the batch sorted set
// instead, so one ZADD moves the head and records the batch.
var serverTimeVariants = []struct{ name, body string }{
	{"noop", ""}, // no redis.call at all: the call and its arguments
	{"head-only", "-"},
	{"xadd", `redis.call('XADD', feed, '0-*', 'i', eid, 'b', batch)`},
	{"zadd", `redis.call('ZADD', evkey, head + n - 1, batch)`},
	{"xadd+zadd", `redis.call('XADD', feed, '0-*', 'i', eid, 'b', batch)
redis.call('ZADD', evkey, head + n - 1, batch)`},
	{"xadd+zadd-ref", `local id = redis.call('XADD', feed, '0-*', 'i', eid, 'b', batch)
redis.call('ZADD', evkey, head + n - 1, id)`},
	{"xadd+rpush", `redis.call('XADD', feed, '0-*', 'i', eid, 'b', batch)
redis.call('RPUSH', evkey, batch)`},
	{"xadd+rpush-ref", `local id = redis.call('XADD', feed, '0-*', 'i', eid, 'b', batch)
redis.call('RPUSH', evkey, id)`},
	{"xadd+xadd", `redis.call('XADD', feed, '0-*', 'i', eid, 'b', batch)
redis.call('XADD', evkey, (head + n - 1) .. '-1', 'b', batch)`},
	{"zhead", `!local meta, evkey, aggs, feed = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local eid, expected, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local head = tonumber(redis.call('ZSCORE', evkey, 'h') or '0')
if head ~= expected then return {0, head} end
local id = redis.call('XADD', feed, '0-*', 'i', eid, 'b', ARGV[8])
redis.call('ZADD', evkey, head + n - 1, id, head + n, 'h')
if head == 0 then redis.call('ZADD', aggs, 0, eid) end
return {1, head + n}`},
}

func variantSource(body string) string {
	if body == "" {
		return "return {1, 0}"
	}
	if body[0] == '!' {
		return body[1:]
	}
	if body == "-" {
		body = ""
	}
	return `local meta, evkey, aggs, feed = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local eid, expected, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local head = tonumber(redis.call('HGET', meta, 'h') or '0')
if head ~= expected then return {0, head} end
local batch = ARGV[8]
` + body + `
redis.call('HSET', meta, 'h', head + n)
if head == 0 then redis.call('ZADD', aggs, 0, eid) end
return {1, head + n}
`
}

// BenchmarkServerTimeVariants runs append.lua ("append.lua") and each
// serverTimeVariants script on a private redis-server with every call
// logged in its SLOWLOG (which records each command's own duration, in
// µs), 1- and 100-event batches: each of the b.N rounds calls every
// script once, on an aggregate of its own, so load on the machine hits
// all of them alike, starting at the next script each round (the first
// call of a round costs more, whichever script it is). It reports each script's median and mean µs per
// call (<name>-p50-µs, <name>-mean-µs); the median is the figure that
// holds still on a loaded machine.
func BenchmarkServerTimeVariants(b *testing.B) {
	addr := startServer(b, "", "--slowlog-log-slower-than", "0",
		"--slowlog-max-len", "100000")
	ctx := context.Background()
	type variant struct {
		name string
		s    *script
	}
	vs := []variant{{"append.lua", appendScript}}
	for _, v := range serverTimeVariants {
		vs = append(vs, variant{v.name, newScript(variantSource(v.body))})
	}

	for _, size := range []int{1, 100} {
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			p := newPersistence(b, Config{Addr: addr})
			evs := make([]*timebox.Event, size)
			for i := range evs {
				evs[i] = &timebox.Event{
					Timestamp: time.Now(), Type: "bench",
					Data: bench.Payload(strconv.Itoa(i)),
				}
			}
			name := map[string]string{}
			for _, v := range vs {
				if err := p.client.ScriptLoad(ctx, v.s.src).Err(); err != nil {
					b.Fatal(err)
				}
				name[v.s.sha] = v.name
			}
			durs := map[string][]float64{}
			collect := func() {
				logs, err := p.client.SlowLogGet(ctx, -1).Result()
				if err != nil {
					b.Fatal(err)
				}
				for _, l := range logs {
					if len(l.Args) > 1 && l.Args[0] == "evalsha" || len(l.Args) > 1 && l.Args[0] == "EVALSHA" {
						if n, ok := name[l.Args[1]]; ok {
							durs[n] = append(durs[n], float64(l.Duration.Microseconds()))
						}
					}
				}
				if err := p.client.Do(ctx, "SLOWLOG", "RESET").Err(); err != nil {
					b.Fatal(err)
				}
			}
			collect()
			durs = map[string][]float64{}
			base := strconv.Itoa(b.N)
			b.ResetTimer()
			for i := range b.N {
				for j := range vs {
					v := vs[(i+j)%len(vs)]
					id := timebox.NewAggregateID("variant", timebox.ID(v.name), timebox.ID(base))
					k := p.keys.aggregate(id)
					req := timebox.AppendRequest{
						ID: id, ExpectedSequence: int64(i * size), Events: evs,
					}
					res, err := p.run(ctx, v.s, true, p.appendKeys(k, req.ExpectedSequence, req.Index),
						appendArgs(k.eid, req)...)
					if err != nil {
						b.Fatal(err)
					}
					if r := res.([]any); r[0].(int64) != 1 && v.name != "noop" {
						b.Fatalf("%s: conflict: %v", v.name, r)
					}
				}
				if i%1000 == 999 {
					collect()
				}
			}
			b.StopTimer()
			collect()
			for _, v := range vs {
				d := durs[v.name]
				if len(d) != b.N {
					b.Fatalf("%s: %d calls logged, want %d", v.name, len(d), b.N)
				}
				slices.Sort(d)
				sum := 0.0
				for _, x := range d {
					sum += x
				}
				b.ReportMetric(d[len(d)/2], v.name+"-p50-µs")
				b.ReportMetric(sum/float64(len(d)), v.name+"-mean-µs")
			}
		})
	}
}
