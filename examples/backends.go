package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/memory"
	"github.com/kode4food/timebox/postgres"
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
		return nil, fmt.Errorf("backend %q is not available yet", backend)
	default:
		return nil, fmt.Errorf("unknown backend %q (want memory, redis, postgres or raft)", backend)
	}
}

// openRedis opens a store on the Redis or Valkey server named by
// TIMEBOX_REDIS_ADDR (default 127.0.0.1:6379).
func openRedis(cfg timebox.Config) (*timebox.Store, error) {
	p, err := redis.NewPersistence(redis.Config{
		Addr:   os.Getenv("TIMEBOX_REDIS_ADDR"),
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
