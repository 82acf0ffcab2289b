package redis

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Config says where a Persistence keeps its data. A zero field means "use
// the default"; see DefaultConfig.
type Config struct {
	// Addr is the server's host:port; the port is required. Several
	// comma-separated addresses name the seed nodes of a Redis Cluster. A
	// single address that turns out to be a cluster node is also opened
	// as a cluster. Addr may instead be one URL,
	// redis://[user[:password]@]host[:port][/db] or rediss://... for TLS
	// (port 6379 when left out): its user, password and db fill Username,
	// Password and DB where those are zero, and rediss:// sets TLS, when
	// nil, to verify the server's certificate for the URL's host. Query
	// parameters are not accepted.
	Addr string

	// Username is the ACL user to authenticate as (AUTH username
	// password); empty for the default user.
	Username string

	// Password authenticates the connection (AUTH); empty for none.
	Password string

	// TLS, when set, makes every connection use TLS with this
	// configuration.
	TLS *tls.Config

	// ClientName is set on every connection (CLIENT SETNAME), so operators
	// and tests can find the store's connections in CLIENT LIST and kill
	// only those. It may not hold spaces or newlines.
	ClientName string

	// DialTimeout, ReadTimeout and WriteTimeout bound connecting, waiting
	// for a reply and sending a command; zero means go-redis's defaults
	// (5s, 3s, and ReadTimeout). A write whose reply times out has an
	// unknown outcome.
	DialTimeout  time.Duration
	ReadTimeout  time.Duration
	WriteTimeout time.Duration

	// PoolSize is the most connections kept per server; zero means
	// go-redis's default (10 per CPU).
	PoolSize int

	// Logger receives every line the backend logs, and go-redis's own
	// (at debug level; see bridgeLogs). Nil means slog.Default().
	Logger *slog.Logger

	// Prefix starts every key of the store, so several stores can share a
	// server. It may hold ':', but none of its ':'-separated parts after
	// the first may be "m", "e" or "c" or start with '{': the keys of a
	// store with a shorter prefix go on that way (its aggregates' "m:" and
	// "e:" keys, its consumers' "c:" keys, its "{Shard}"), so two stores
	// could share keys (ErrInvalidPrefix).
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
	DefaultAddr       = "127.0.0.1:6379"
	DefaultPrefix     = "timebox"
	DefaultDB         = 0
	DefaultMinIdle    = 30 * time.Second
	DefaultClientName = "timebox"
)

// Configuration errors. NewPersistence returns them before connecting;
// fix the Config.
var (
	// ErrInvalidDB means Config.DB is negative, or not 0 on a cluster.
	ErrInvalidDB = errors.New("redis: invalid DB")

	// ErrInvalidShard means Config.Shard holds '{', '}' or ':'.
	ErrInvalidShard = errors.New("redis: shard must not contain '{', '}' or ':'")

	// ErrInvalidPrefix means a ':'-separated part of Config.Prefix after
	// the first is "m", "e" or "c" or starts with '{', so the store's keys
	// could be those of a store with a shorter prefix (see Config.Prefix).
	ErrInvalidPrefix = errors.New(`redis: a part of the prefix after a ':' must not be "m", "e" or "c" or start with '{'`)

	// ErrInvalidMinIdle means Config.MinIdle is negative.
	ErrInvalidMinIdle = errors.New("redis: min idle must not be negative")

	// ErrInvalidAddr means Config.Addr lists an empty address, one that
	// is not host:port (a port is required), or a URL that cannot be
	// parsed or is not redis:// or rediss://.
	ErrInvalidAddr = errors.New("redis: invalid address")

	// ErrInvalidTimeout means a timeout in Config is negative.
	ErrInvalidTimeout = errors.New("redis: timeouts must not be negative")

	// ErrInvalidPoolSize means Config.PoolSize is negative.
	ErrInvalidPoolSize = errors.New("redis: pool size must not be negative")

	// ErrInvalidClientName means Config.ClientName holds a space or a
	// newline, which CLIENT SETNAME refuses.
	ErrInvalidClientName = errors.New("redis: client name must not hold spaces or newlines")

	// ErrShardRequired means the server is a Redis Cluster and Config.Shard
	// is empty: a store's keys must share one slot for its scripts to run
	// atomically, so set Shard.
	ErrShardRequired = errors.New("redis: Shard is required on a Redis Cluster")
)

// DefaultConfig returns the Config with every default applied.
func DefaultConfig() Config {
	return Config{
		Addr:       DefaultAddr,
		Prefix:     DefaultPrefix,
		DB:         DefaultDB,
		MinIdle:    DefaultMinIdle,
		ClientName: DefaultClientName,
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
	return c.withConn(other)
}

func (c Config) withConn(other Config) Config {
	if other.Username != "" {
		c.Username = other.Username
	}
	if other.TLS != nil {
		c.TLS = other.TLS
	}
	if other.ClientName != "" {
		c.ClientName = other.ClientName
	}
	if other.DialTimeout != 0 {
		c.DialTimeout = other.DialTimeout
	}
	if other.ReadTimeout != 0 {
		c.ReadTimeout = other.ReadTimeout
	}
	if other.WriteTimeout != 0 {
		c.WriteTimeout = other.WriteTimeout
	}
	if other.PoolSize != 0 {
		c.PoolSize = other.PoolSize
	}
	if other.Logger != nil {
		c.Logger = other.Logger
	}
	return c
}

// Validate returns ErrInvalidDB, ErrInvalidShard, ErrInvalidPrefix,
// ErrInvalidMinIdle, ErrInvalidAddr (ErrInvalidDB for a URL's negative
// database), ErrInvalidTimeout, ErrInvalidPoolSize or
// ErrInvalidClientName, checked in that order, or nil.
func (c Config) Validate() error {
	switch {
	case c.DB < 0:
		return ErrInvalidDB
	case strings.ContainsAny(c.Shard, "{}:"):
		return ErrInvalidShard
	case !validPrefix(c.Prefix):
		return ErrInvalidPrefix
	case c.MinIdle < 0:
		return ErrInvalidMinIdle
	}
	if r, err := c.resolve(); err != nil {
		return err
	} else if r.DB < 0 {
		return ErrInvalidDB
	}
	switch {
	case c.DialTimeout < 0, c.ReadTimeout < 0, c.WriteTimeout < 0:
		return ErrInvalidTimeout
	case c.PoolSize < 0:
		return ErrInvalidPoolSize
	case strings.ContainsAny(c.ClientName, " \t\r\n"):
		return ErrInvalidClientName
	}
	return nil
}

// resolve returns c with a URL in Addr applied (see Config.Addr), after
// checking every address is host:port.
func (c Config) resolve() (Config, error) {
	if strings.Contains(c.Addr, "://") {
		return c.fromURL()
	}
	for _, a := range c.addrs() {
		if err := checkHostPort(a); err != nil {
			return c, err
		}
	}
	return c, nil
}

func (c Config) fromURL() (Config, error) {
	bad := func(why string) (Config, error) {
		return c, fmt.Errorf("%w: %s", ErrInvalidAddr, why)
	}
	if !strings.HasPrefix(c.Addr, "redis://") && !strings.HasPrefix(c.Addr, "rediss://") {
		return bad("a URL must be redis:// or rediss://")
	}
	if strings.ContainsAny(c.Addr, ",?") {
		return bad("one URL, without query parameters")
	}
	o, err := redis.ParseURL(c.Addr)
	if err != nil {
		return bad(err.Error())
	}
	if err := checkHostPort(o.Addr); err != nil {
		return c, err
	}
	c.Addr = o.Addr
	if c.Username == "" {
		c.Username = o.Username
	}
	if c.Password == "" {
		c.Password = o.Password
	}
	if c.DB == 0 {
		c.DB = o.DB
	}
	if c.TLS == nil && o.TLSConfig != nil {
		c.TLS = o.TLSConfig
	}
	return c, nil
}

// validPrefix reports whether no ':'-separated part of prefix after the
// first is one a shorter prefix's keys go on with (see Config.Prefix).
func validPrefix(prefix string) bool {
	for _, part := range strings.Split(prefix, ":")[1:] {
		switch {
		case part == "m", part == "e", part == "c", strings.HasPrefix(part, "{"):
			return false
		}
	}
	return true
}

func checkHostPort(a string) error {
	_, port, err := net.SplitHostPort(a)
	switch {
	case a == "":
		return fmt.Errorf("%w: empty address", ErrInvalidAddr)
	case err != nil:
		return fmt.Errorf("%w: %q: %v", ErrInvalidAddr, a, err)
	case port == "":
		return fmt.Errorf("%w: %q: a port is required", ErrInvalidAddr, a)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Errorf("%w: %q: the port must be a number from 1 to 65535", ErrInvalidAddr, a)
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

// logger returns the Logger, or slog.Default() when it is nil.
func (c Config) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.Default()
}

// MaxSequence is the highest sequence a snapshot may move an aggregate's
// head to. Lua numbers are doubles, exact only up to 2^53, so the scripts
// could not compare or store larger heads exactly; a snapshot beyond it
// fails with timebox.ErrInvalidSequence.
const MaxSequence = 1 << 52
