package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/memory"
	"github.com/kode4food/timebox/postgres"
	"github.com/kode4food/timebox/raft"
	"github.com/kode4food/timebox/redis"
)

// openStore opens a store on the named backend. Server backends take their
// address from the same variables as the tests.
func openStore(backend string, cfg timebox.Config) (*timebox.Store, error) {
	switch backend {
	case "memory":
		return memory.NewPersistence().NewStore(cfg)
	case "redis":
		return openRedis(cfg)
	case "postgres":
		return openPostgres(cfg)
	case "raft":
		return openRaft(cfg)
	default:
		return nil, fmt.Errorf("unknown backend %q (want memory, redis, postgres or raft)", backend)
	}
}

// redisAddr is the server -backend redis uses.
var redisAddr = flag.String("redis-addr", os.Getenv("TIMEBOX_REDIS_ADDR"),
	"Redis address (host:port, or a redis:// or rediss:// URL) for -backend redis\n"+
		"(default $TIMEBOX_REDIS_ADDR, else "+redis.DefaultAddr+")")

func init() {
	flag.Usage = func() {
		out := flag.CommandLine.Output()
		fmt.Fprintf(out, "Usage: go run ./examples [flags]\n\n"+
			"Runs the order lifecycle example on one backend.\n\nFlags:\n")
		flag.PrintDefaults()
		fmt.Fprintf(out, "\nEnvironment (the flags override them):\n"+
			"  TIMEBOX_REDIS_ADDR     default of -redis-addr\n"+
			"  TIMEBOX_POSTGRES_URL   default of -postgres-url\n")
	}
}

// openRedis opens a store on the Redis server named by -redis-addr.
func openRedis(cfg timebox.Config) (*timebox.Store, error) {
	p, err := redis.NewPersistence(redis.Config{
		Addr:   *redisAddr,
		Prefix: "timebox-example",
	})
	if err != nil {
		return nil, err
	}
	return p.NewStore(cfg)
}

// postgresURL is the server -backend postgres uses.
var postgresURL = flag.String("postgres-url", os.Getenv("TIMEBOX_POSTGRES_URL"),
	"PostgreSQL URL for -backend postgres (default $TIMEBOX_POSTGRES_URL, else "+
		postgres.DefaultURL+")")

// openPostgres opens a store on the PostgreSQL server named by
// -postgres-url, creating the timebox tables there if they are missing.
func openPostgres(cfg timebox.Config) (*timebox.Store, error) {
	p, err := postgres.NewPersistence(postgres.Config{
		URL:    *postgresURL,
		Prefix: "timebox-example",
	})
	if err != nil {
		return nil, err
	}
	return p.NewStore(cfg)
}

// openRaft starts a single-node Raft cluster in a temporary directory,
// which closing the store removes.
func openRaft(cfg timebox.Config) (*timebox.Store, error) {
	dir, err := os.MkdirTemp("", "timebox-raft-")
	if err != nil {
		return nil, err
	}
	p, err := raft.NewPersistence(raft.Config{
		LocalID: "example", Address: "127.0.0.1:0", DataDir: dir,
	})
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	store, err := timebox.NewStore(tempRaft{Persistence: p, dir: dir}, cfg)
	if err != nil {
		_ = p.Close()
		_ = os.RemoveAll(dir)
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := store.WaitReady(ctx); err != nil {
		_ = store.Close()
		return nil, err
	}
	return store, nil
}

// tempRaft is a Raft node whose data directory goes away with it.
type tempRaft struct {
	*raft.Persistence
	dir string
}

func (t tempRaft) Close() error {
	err := t.Persistence.Close()
	_ = os.RemoveAll(t.dir)
	return err
}
