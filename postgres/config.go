package postgres

import (
	"errors"
	"log/slog"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Config says where a Persistence stores its data. A zero field means "use
// the default"; see DefaultConfig.
type Config struct {
	// URL is the connection string, parsed by pgx (pgxpool.ParseConfig),
	// so sslmode, TLS files, connect_timeout and other URL options apply.
	URL string

	// Prefix is the store's namespace: many stores share the tables, each
	// seeing only the rows of its own Prefix.
	Prefix string

	// MaxConns is the most connections the pool opens. It overrides a
	// pool_max_conns given in URL.
	MaxConns int

	// Pool, if set, is an existing pool to use instead of opening one from
	// URL (which, with MaxConns, is then ignored): the service's own, with
	// its tracer and settings. The caller owns it: Close leaves it open.
	// The settings NewPersistence gives a pool of its own are the caller's
	// to choose here; enable_seqscan=off is recommended (see DESIGN.md),
	// and NewPersistence logs a warning when a session of the pool has
	// sequential scans enabled and reuses plans.
	Pool *pgxpool.Pool

	// Logger receives every log line of the Persistence; nil means
	// slog.Default().
	Logger *slog.Logger

	// ArchiveLease is how long an archive record handed to a consumer stays
	// invisible to other consumers: one that dies holding it leaves it to
	// be redelivered this long after it took it (redis's MinIdle). Keep it
	// above the longest a handler takes.
	ArchiveLease time.Duration
}

// Defaults for Config.
const (
	DefaultURL      = "postgres://localhost:5432/postgres?sslmode=disable"
	DefaultPrefix   = "timebox"
	DefaultMaxConns = 96

	DefaultArchiveLease = 30 * time.Second

	// MaxPrefixLength is the longest Prefix, in bytes.
	MaxPrefixLength = 256
)

// Errors returned by Config.Validate. Nothing was opened; fix the config.
var (
	// ErrURLRequired means Config.URL is empty.
	ErrURLRequired = errors.New("postgres: URL is required")

	// ErrPrefixRequired means Config.Prefix is empty.
	ErrPrefixRequired = errors.New("postgres: prefix is required")

	// ErrInvalidPrefix means Config.Prefix is longer than MaxPrefixLength
	// bytes, not UTF-8, or holds a NUL byte, which text columns refuse.
	ErrInvalidPrefix = errors.New("postgres: prefix must be at most 256 bytes of UTF-8 without NUL")

	// ErrInvalidMaxConns means Config.MaxConns is not a positive int32.
	ErrInvalidMaxConns = errors.New("postgres: max conns must be positive")

	// ErrInvalidArchiveLease means Config.ArchiveLease is under a
	// millisecond.
	ErrInvalidArchiveLease = errors.New("postgres: archive lease must be at least 1ms")
)

// DefaultConfig returns the Config with every default applied.
func DefaultConfig() Config {
	return Config{
		URL:      DefaultURL,
		Prefix:   DefaultPrefix,
		MaxConns: DefaultMaxConns,

		ArchiveLease: DefaultArchiveLease,
	}
}

// With returns c with every non-zero field of other laid over it.
func (c Config) With(other Config) Config {
	if other.URL != "" {
		c.URL = other.URL
	}
	if other.Prefix != "" {
		c.Prefix = other.Prefix
	}
	if other.MaxConns != 0 {
		c.MaxConns = other.MaxConns
	}
	if other.Pool != nil {
		c.Pool = other.Pool
	}
	if other.Logger != nil {
		c.Logger = other.Logger
	}
	if other.ArchiveLease != 0 {
		c.ArchiveLease = other.ArchiveLease
	}
	return c
}

// Validate returns ErrURLRequired (no URL and no Pool), ErrPrefixRequired,
// ErrInvalidPrefix, ErrInvalidMaxConns or ErrInvalidArchiveLease, checked
// in that order, or nil.
// It does not parse URL: NewPersistence does, and reports a malformed URL.
func (c Config) Validate() error {
	switch {
	case c.URL == "" && c.Pool == nil:
		return ErrURLRequired
	case c.Prefix == "":
		return ErrPrefixRequired
	case len(c.Prefix) > MaxPrefixLength || !utf8.ValidString(c.Prefix) ||
		strings.IndexByte(c.Prefix, 0) >= 0:
		return ErrInvalidPrefix
	case c.Pool == nil && (c.MaxConns <= 0 || c.MaxConns > math.MaxInt32):
		return ErrInvalidMaxConns
	case c.ArchiveLease < time.Millisecond:
		return ErrInvalidArchiveLease
	}
	return nil
}
