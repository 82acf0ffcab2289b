package timebox

import (
	"log/slog"
	"math"
	"time"
)

// Config tunes a Store and the Executors built on it. A zero field means
// "use the default"; see DefaultConfig.
type Config struct {
	// TrimEvents removes events below a saved snapshot's sequence from
	// live storage. State is still rebuilt from the snapshot.
	TrimEvents bool

	// SnapshotRatio is the size of the events after the snapshot, relative
	// to the snapshot, past which an Executor saves a new snapshot: on a
	// load that read them, or in the background after a commit (see
	// SnapshotMinEvents).
	SnapshotRatio float64

	// SnapshotMinEvents is how many events an Executor must have committed
	// to an aggregate since its last snapshot before it consults
	// SnapshotRatio after a commit; only then may it save a snapshot in
	// the background (the Executor's next append to the aggregate then
	// waits for that one write). It keeps a small state with large events
	// from costing a snapshot write per command, and bounds how far a busy
	// aggregate's snapshot trails its head: when a burst of commits ends,
	// fewer than SnapshotMinEvents of them (or none, once the last
	// background snapshot is stored) follow the snapshot. Zero means
	// DefaultSnapshotMinEvents; 1 consults SnapshotRatio after every
	// commit. A snapshot on a load is weighed by SnapshotRatio alone.
	SnapshotMinEvents int

	// MaxRetries is how many attempts (not retries after the first) an
	// Executor makes before it fails with ErrMaxRetriesExceeded.
	MaxRetries int

	// CacheSize is how many aggregate states each Executor keeps in its LRU
	// cache.
	CacheSize int

	// Indexer derives status and label changes from each appended batch.
	Indexer Indexer

	// Logger receives every line the Store and its Executors log: panics
	// recovered from user code (ERROR, with the stack), failed success
	// actions and background snapshots. Nil means slog.Default(), looked
	// up at each line.
	Logger *slog.Logger

	// SkipUndecodable makes Executors lenient: an event whose Applier
	// (built by MakeApplier) cannot decode its Data leaves the state
	// unchanged. By default such an event fails the load, Exec or Raise
	// with an error wrapping ErrInvalidEvent.
	SkipUndecodable bool

	// RequireAppliers makes Executors strict: Raise of an event type the
	// Executor has no Applier for fails with ErrNoApplier instead of
	// storing an event no state will ever see.
	RequireAppliers bool

	// Hooks observes commands, appends, conflicts, loads and snapshots
	// (see Hooks; the otel subpackage implements it). Nil observes
	// nothing, at no cost.
	Hooks Hooks

	// RetryTimeout bounds how long the Store keeps retrying a call that
	// met a transient error (ErrUnavailable, or ErrUnknownOutcome for an
	// append), counted from the first failure; the call's ctx bounds it
	// too. Zero means DefaultRetryTimeout; a negative value turns the
	// retries off.
	RetryTimeout time.Duration

	// CommandWindow is how many recent command IDs (WithCommandID) per
	// aggregate an Executor remembers to recognise a repeated command.
	// Zero means DefaultCommandWindow.
	CommandWindow int
}

// Defaults for Config.
const (
	DefaultTrimEvents    = false
	DefaultSnapshotRatio = 1.0
	DefaultMaxRetries    = 16
	DefaultCacheSize     = 128
	DefaultRetryTimeout  = 10 * time.Second

	// DefaultSnapshotMinEvents is the SnapshotMinEvents a zero value
	// means.
	DefaultSnapshotMinEvents = 32
)

// DefaultConfig returns the Config with every default applied.
func DefaultConfig() Config {
	return Config{
		TrimEvents:    DefaultTrimEvents,
		SnapshotRatio: DefaultSnapshotRatio,
		MaxRetries:    DefaultMaxRetries,
		CacheSize:     DefaultCacheSize,
	}
}

// Configure applies overlays to defaults from left to right with T's With
// method, so the store's Config and every backend's config overlay the same
// way: a zero field of an overlay leaves the value before it.
func Configure[T interface{ With(T) T }](defaults T, overlays ...T) T {
	res := defaults
	for _, o := range overlays {
		res = res.With(o)
	}
	return res
}

// With returns c with every non-zero field of other laid over it.
func (c Config) With(other Config) Config {
	if other.TrimEvents {
		c.TrimEvents = true
	}
	if other.SnapshotRatio != 0 {
		c.SnapshotRatio = other.SnapshotRatio
	}
	if other.SnapshotMinEvents != 0 {
		c.SnapshotMinEvents = other.SnapshotMinEvents
	}
	if other.MaxRetries != 0 {
		c.MaxRetries = other.MaxRetries
	}
	if other.CacheSize != 0 {
		c.CacheSize = other.CacheSize
	}
	if other.Indexer != nil {
		c.Indexer = other.Indexer
	}
	if other.Logger != nil {
		c.Logger = other.Logger
	}
	if other.SkipUndecodable {
		c.SkipUndecodable = true
	}
	if other.RequireAppliers {
		c.RequireAppliers = true
	}
	if other.Hooks != nil {
		c.Hooks = other.Hooks
	}
	if other.RetryTimeout != 0 {
		c.RetryTimeout = other.RetryTimeout
	}
	if other.CommandWindow != 0 {
		c.CommandWindow = other.CommandWindow
	}
	return c
}

// logger returns c.Logger, or slog.Default() when it is nil.
func (c Config) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.Default()
}

// Validate returns ErrInvalidSnapshotRatio, ErrInvalidMaxRetries,
// ErrInvalidCacheSize, ErrInvalidSnapshotMinEvents or
// ErrInvalidCommandWindow, checked in that order, or nil.
func (c Config) Validate() error {
	switch {
	case c.SnapshotRatio < 0, math.IsNaN(c.SnapshotRatio):
		return ErrInvalidSnapshotRatio
	case c.MaxRetries <= 0:
		return ErrInvalidMaxRetries
	case c.CacheSize <= 0:
		return ErrInvalidCacheSize
	case c.SnapshotMinEvents < 0:
		return ErrInvalidSnapshotMinEvents
	case c.CommandWindow < 0:
		return ErrInvalidCommandWindow
	}
	return nil
}

// snapshotMinEvents returns the configured SnapshotMinEvents.
func (c Config) snapshotMinEvents() int {
	if c.SnapshotMinEvents > 0 {
		return c.SnapshotMinEvents
	}
	return DefaultSnapshotMinEvents
}
