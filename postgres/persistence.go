package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/puddle/v2"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/closer"
)

// Persistence is a timebox.Backend on PostgreSQL, holding a pgx pool. It
// is safe for concurrent use, and many Persistence values, in one process
// or many, may share a database and a Prefix.
type Persistence struct {
	pool   *pgxpool.Pool
	owned  bool // pool was opened here, and is closed by Close
	guard  *poolGuard
	log    *slog.Logger
	ns     string
	lease  time.Duration
	ready  chan struct{}
	done   chan struct{} // closed by Close
	closed closer.Flag
	listen archiveListener

	notifier feedNotifier
	prefetch feedPrefetch
	bg       context.Context // ended by Close: the read-ahead's
	stopBG   context.CancelFunc
}

// ErrInvalidURL means Config.URL could not be parsed. Nothing was opened.
var ErrInvalidURL = errors.New("postgres: invalid URL")

var (
	_ timebox.Backend         = (*Persistence)(nil)
	_ timebox.ConsumerBackend = (*Persistence)(nil)
)

// NewPersistence lays cfgs over DefaultConfig, validates the result,
// connects (or takes Config.Pool), checks the server answers and migrates
// the schema (see schema.sql). It returns the Config's validation error,
// ErrInvalidURL, ErrSchemaMismatch or ErrSchemaTooNew when the database
// holds tables it cannot use, or the error met connecting or migrating; a
// server that cannot be reached is an error here, not later.
func NewPersistence(cfgs ...Config) (*Persistence, error) {
	cfg := timebox.Configure(DefaultConfig(), cfgs...)
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Persistence{
		pool: cfg.Pool, ns: cfg.Prefix, log: cfg.Logger,
		lease: cfg.ArchiveLease,
		ready: make(chan struct{}), done: make(chan struct{}),
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	p.log = p.log.With("backend", "postgres", "prefix", cfg.Prefix)
	ctx := context.Background()
	if p.pool == nil {
		p.guard = newPoolGuard(maxConnecting, p.log)
		pc, err := poolConfig(cfg, p.guard)
		if err != nil {
			return nil, err
		}
		p.pool, err = pgxpool.NewWithConfig(ctx, pc)
		if err != nil {
			return nil, fmt.Errorf("postgres: open pool: %w", err)
		}
		p.owned = true
	}
	if err := p.open(ctx); err != nil {
		if p.owned {
			p.pool.Close()
		}
		return nil, err
	}
	p.bg, p.stopBG = context.WithCancel(context.Background())
	close(p.ready)
	return p, nil
}

func (p *Persistence) open(ctx context.Context) error {
	if err := p.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: connect: %w", err)
	}
	if err := p.checkPlanSettings(ctx); err != nil {
		return err
	}
	return migrate(ctx, p.pool, p.log)
}

// checkPlanSettings logs a warning when a session of p's pool may reuse
// a plan made while a table was small, a sequential scan, after the table
// has grown: sequential scans enabled, and plans reused. The pool's own
// sessions disable them (pool.go); a pool from Config.Pool, or a URL
// that enables them, has the caller's settings, which this reads from a
// session (so settings of the role or database count).
func (p *Persistence) checkPlanSettings(ctx context.Context) error {
	var seqscan, mode string
	if err := p.pool.QueryRow(ctx, planSettingsSQL).Scan(&seqscan, &mode); err != nil {
		return fmt.Errorf("postgres: read plan settings: %w", err)
	}
	if seqscan == "on" && mode != "force_custom_plan" {
		p.log.Warn("sessions may reuse a plan made while a table was small, "+
			"a sequential scan, after it has grown; set enable_seqscan=off on the pool "+
			"(see postgres/DESIGN.md)",
			"enable_seqscan", seqscan, "plan_cache_mode", mode)
	}
	return nil
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
// connections, unless it is Config.Pool, which the caller closes. Later
// calls return an error matching timebox.ErrClosed; a second Close
// returns nil.
func (p *Persistence) Close() error {
	if p.closed.Swap(true) {
		return nil
	}
	close(p.done)
	p.stopListener()
	p.notifier.stop()
	p.stopBG()
	p.prefetch.stop()
	if p.owned {
		p.pool.Close()
	}
	return nil
}

// checkOpen returns timebox.ErrClosed once p is closed (closer.Flag).
func (p *Persistence) checkOpen() error {
	return p.closed.Check()
}

// writeFailed classifies a failed write: a server error means it was
// rolled back, and an error pgx marks safe to retry, or a pool closed (by
// the caller who passed it in), means it was never sent; anything else
// leaves the outcome unknown.
func (p *Persistence) writeFailed(ctx context.Context, op string, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) || pgconn.SafeToRetry(err) || p.closed.Load() ||
		errors.Is(err, puddle.ErrClosedPool) { // a pool the caller closed: not sent
		return p.fail(ctx, op, err)
	}
	return fmt.Errorf("postgres: %s: %w: %w", op, timebox.ErrUnknownOutcome, err)
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
// serialization failure, deadlock), or a statement cancelled (57014) while
// the caller's context is live. A cancel request names a connection, not a
// statement: one sent for an earlier caller's done context can reach the
// server after that statement ended and cancel the next one on the same
// connection, which was then rolled back.
func unavailable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		c := pgErr.Code
		return strings.HasPrefix(c, "08") || strings.HasPrefix(c, "53") ||
			strings.HasPrefix(c, "57P") || strings.HasPrefix(c, "40") ||
			c == "57014"
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
