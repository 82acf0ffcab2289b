package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
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

// fail wraps an error met during op, which wrote nothing: ErrClosed when p
// was closed under the call, ctx's error alongside the driver's when ctx
// is done, so errors.Is finds both, and timebox.ErrUnavailable when the
// connection failed or the server could not serve the statement (see
// unavailable).
func (p *Persistence) fail(ctx context.Context, op string, err error) error {
	if p.closed.Load() {
		return fmt.Errorf("postgres: %s: %w: %w", op, timebox.ErrClosed, err)
	}
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("postgres: %s: %w: %w", op, cerr, err)
	}
	if unavailable(err) {
		return fmt.Errorf("postgres: %s: %w: %w", op, timebox.ErrUnavailable, err)
	}
	return fmt.Errorf("postgres: %s: %w", op, err)
}

// unavailable reports whether err, from a call that wrote nothing, is
// worth retrying: a failed connect, a connection lost, or a server error
// of class 08 (connection exception), 53 (insufficient resources), 57P
// (operator intervention: shutdown, restart) or 40 (transaction rollback:
// serialization failure, deadlock).
func unavailable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		c := pgErr.Code
		return strings.HasPrefix(c, "08") || strings.HasPrefix(c, "53") ||
			strings.HasPrefix(c, "57P") || strings.HasPrefix(c, "40")
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var connErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connErr) || pgconn.SafeToRetry(err) ||
		errors.As(err, &netErr) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNREFUSED)
}
