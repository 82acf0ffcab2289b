package redis

import (
	"errors"
	"strings"
	"time"
)

// Config says where a Persistence keeps its data. A zero field means "use
// the default"; see DefaultConfig.
type Config struct {
	// Addr is the server's host:port. Several comma-separated addresses
	// name the seed nodes of a Redis Cluster. A single address that turns
	// out to be a cluster node is also opened as a cluster.
	Addr string

	// Password authenticates the connection (AUTH); empty for none.
	Password string

	// Prefix starts every key of the store, so several stores can share a
	// server.
	Prefix string

	// Shard, when set, is put in every key as the hash tag {Shard}, so all
	// keys of the store live in one cluster slot. It is required on a
	// Redis Cluster, and may not hold '{', '}' or ':'.
	Shard string

	// DB is the logical database to SELECT; it must be 0 on a cluster.
	DB int

	// MinIdle is how long an archive record must have been pending with
	// another consumer before ConsumeArchive reclaims it.
	MinIdle time.Duration
}

// Defaults for Config.
const (
	DefaultAddr    = "127.0.0.1:6379"
	DefaultPrefix  = "timebox"
	DefaultDB      = 0
	DefaultMinIdle = 30 * time.Second
)

// Configuration errors. NewPersistence returns them before connecting;
// fix the Config.
var (
	// ErrInvalidDB means Config.DB is negative, or not 0 on a cluster.
	ErrInvalidDB = errors.New("redis: invalid DB")

	// ErrInvalidShard means Config.Shard holds '{', '}' or ':'.
	ErrInvalidShard = errors.New("redis: shard must not contain '{', '}' or ':'")

	// ErrInvalidMinIdle means Config.MinIdle is negative.
	ErrInvalidMinIdle = errors.New("redis: min idle must not be negative")

	// ErrInvalidAddr means Config.Addr lists an empty address.
	ErrInvalidAddr = errors.New("redis: invalid address")

	// ErrShardRequired means the server is a Redis Cluster and Config.Shard
	// is empty: a store's keys must share one slot for its scripts to run
	// atomically, so set Shard.
	ErrShardRequired = errors.New("redis: Shard is required on a Redis Cluster")
)

// DefaultConfig returns the Config with every default applied.
func DefaultConfig() Config {
	return Config{
		Addr:    DefaultAddr,
		Prefix:  DefaultPrefix,
		DB:      DefaultDB,
		MinIdle: DefaultMinIdle,
	}
}

// With returns c with every non-zero field of other laid over it.
func (c Config) With(other Config) Config {
	if other.Addr != "" {
		c.Addr = other.Addr
	}
	if other.Password != "" {
		c.Password = other.Password
	}
	if other.Prefix != "" {
		c.Prefix = other.Prefix
	}
	if other.Shard != "" {
		c.Shard = other.Shard
	}
	if other.DB != 0 {
		c.DB = other.DB
	}
	if other.MinIdle != 0 {
		c.MinIdle = other.MinIdle
	}
	return c
}

// Validate returns ErrInvalidDB, ErrInvalidShard, ErrInvalidMinIdle or
// ErrInvalidAddr, checked in that order, or nil.
func (c Config) Validate() error {
	switch {
	case c.DB < 0:
		return ErrInvalidDB
	case strings.ContainsAny(c.Shard, "{}:"):
		return ErrInvalidShard
	case c.MinIdle < 0:
		return ErrInvalidMinIdle
	}
	for _, a := range c.addrs() {
		if a == "" {
			return ErrInvalidAddr
		}
	}
	return nil
}

func (c Config) addrs() []string {
	res := strings.Split(c.Addr, ",")
	for i, a := range res {
		res[i] = strings.TrimSpace(a)
	}
	return res
}

// MaxSequence is the highest sequence a snapshot may move an aggregate's
// head to. Lua numbers are doubles, exact only up to 2^53, so the scripts
// could not compare or store larger heads exactly; a snapshot beyond it
// fails with timebox.ErrInvalidSequence.
const MaxSequence = 1 << 52
