package otel_test

import (
	"context"
	"fmt"
	"testing"

	goredis "github.com/redis/go-redis/v9"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/bench"
	"github.com/kode4food/timebox/internal/testserver"
	"github.com/kode4food/timebox/memory"
	"github.com/kode4food/timebox/otel"
	"github.com/kode4food/timebox/redis"
)

// BenchmarkExecSeqHooks is exec-seq with no Hooks and with the otel Hooks
// (SDK providers, every span sampled, metrics aggregated by a reader, no
// exporter) on memory and redis, in three rounds that interleave off and
// on, so both share the machine's state; compare the medians.
func BenchmarkExecSeqHooks(b *testing.B) {
	backends := []struct {
		name string
		open func(b *testing.B, cfg timebox.Config) *timebox.Store
	}{
		{"memory", func(b *testing.B, cfg timebox.Config) *timebox.Store {
			s, err := memory.NewPersistence().NewStore(cfg)
			if err != nil {
				b.Fatal(err)
			}
			return s
		}},
		{"redis", func(b *testing.B, cfg timebox.Config) *timebox.Store {
			return openRedis(b, cfg)
		}},
	}
	for round := range 3 {
		for _, be := range backends {
			for _, on := range []bool{false, true} {
				name := fmt.Sprintf("%s/round=%d/hooks=off", be.name, round+1)
				if on {
					name = fmt.Sprintf("%s/round=%d/hooks=otel", be.name, round+1)
				}
				b.Run(name, func(b *testing.B) {
					cfg := timebox.Config{}
					if on {
						cfg.Hooks = sdkHooks(b)
					}
					s := be.open(b, cfg)
					b.Cleanup(func() { _ = s.Close() })
					bench.ExecSeq(b, s)
				})
			}
		}
	}
}

func sdkHooks(b *testing.B) *otel.Hooks {
	tp := sdktrace.NewTracerProvider()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	b.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	h, err := otel.New(otel.Config{TracerProvider: tp, MeterProvider: mp})
	if err != nil {
		b.Fatal(err)
	}
	return h
}

func openRedis(b testing.TB, cfg timebox.Config) *timebox.Store {
	addr := testserver.RedisAddr(b)
	prefix := testserver.Prefix(b)
	p, err := redis.NewPersistence(redis.Config{Addr: addr, Prefix: prefix})
	if err != nil {
		b.Fatal(err)
	}
	s, err := p.NewStore(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		c := goredis.NewClient(&goredis.Options{Addr: addr})
		defer func() { _ = c.Close() }()
		ctx := context.Background()
		iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			_ = c.Del(ctx, iter.Val()).Err()
		}
	})
	return s
}
