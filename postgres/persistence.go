package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kode4food/timebox"
)

// Persistence is a timebox.Backend on PostgreSQL, holding a pgx pool. It
// is safe for concurrent use, and many Persistence values, in one process
// or many, may share a database and a Prefix.
type Persistence struct {
	pool   *pgxpool.Pool
	guard  *poolGuard
	ns     string
	ready  chan struct{}
	closed atomic.Bool
}

// ErrInvalidURL means Config.URL could not be parsed. Nothing was opened.
var ErrInvalidURL = errors.New("postgres: invalid URL")

var _ timebox.Backend = (*Persistence)(nil)

// NewPersistence lays cfgs over DefaultConfig, validates the result,
// connects, checks the server answers and migrates the schema (see
// schema.sql). It returns the Config's validation error, ErrInvalidURL, or
// the error met connecting or migrating; a server that cannot be reached
// is an error here, not later.
func NewPersistence(cfgs ...Config) (*Persistence, error) {
	cfg := timebox.Configure(DefaultConfig(), cfgs...)
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	guard := newPoolGuard(maxConnecting)
	pc, err := poolConfig(cfg, guard)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("postgres: open pool: %w", err)
	}
	if err := open(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	p := &Persistence{
		pool: pool, guard: guard, ns: cfg.Prefix, ready: make(chan struct{}),
	}
	close(p.ready)
	return p, nil
}

func open(ctx context.Context, pool *pgxpool.Pool) error {
	if err := pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: connect: %w", err)
	}
	return migrate(ctx, pool)
}

// NewStore returns a timebox.Store on p with cfg laid over the defaults.
// The Store owns p: closing the Store closes p.
func (p *Persistence) NewStore(cfg timebox.Config) (*timebox.Store, error) {
	return timebox.NewStore(p, cfg)
}

// Ready is closed from the start: NewPersistence returns only once the
// database is reachable and migrated.
func (p *Persistence) Ready() <-chan struct{} {
	return p.ready
}

// Close closes the pool, waiting for calls in flight to release their
// connections. Later calls return an error matching timebox.ErrClosed; a
// second Close returns nil.
func (p *Persistence) Close() error {
	if p.closed.Swap(true) {
		return nil
	}
	p.pool.Close()
	return nil
}

func (p *Persistence) checkOpen() error {
	if p.closed.Load() {
		return fmt.Errorf("postgres: %w", timebox.ErrClosed)
	}
	return nil
}

// fail wraps an error met during op: ErrClosed when p was closed under the
// call, and ctx's error alongside the driver's when ctx is done, so
// errors.Is finds both.
func (p *Persistence) fail(ctx context.Context, op string, err error) error {
	if p.closed.Load() {
		return fmt.Errorf("postgres: %s: %w: %w", op, timebox.ErrClosed, err)
	}
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("postgres: %s: %w: %w", op, cerr, err)
	}
	return fmt.Errorf("postgres: %s: %w", op, err)
}
