package postgres_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox/postgres"
)

func TestConfigDefaults(t *testing.T) {
	cfg := postgres.DefaultConfig()
	require.Equal(t, postgres.Config{
		URL:          postgres.DefaultURL,
		Prefix:       postgres.DefaultPrefix,
		MaxConns:     postgres.DefaultMaxConns,
		ArchiveLease: postgres.DefaultArchiveLease,
	}, cfg)
	require.NoError(t, cfg.Validate())
}

func TestConfigWith(t *testing.T) {
	cfg := postgres.DefaultConfig().With(postgres.Config{Prefix: "p"})
	require.Equal(t, postgres.DefaultURL, cfg.URL)
	require.Equal(t, "p", cfg.Prefix)
	require.Equal(t, postgres.DefaultMaxConns, cfg.MaxConns)

	cfg = cfg.With(postgres.Config{
		URL: "postgres://x/y", MaxConns: 3, ArchiveLease: time.Second,
	})
	require.Equal(t, postgres.Config{
		URL: "postgres://x/y", Prefix: "p", MaxConns: 3, ArchiveLease: time.Second,
	}, cfg)
}

func TestConfigValidate(t *testing.T) {
	ok := postgres.DefaultConfig()
	for _, tc := range []struct {
		name string
		cfg  postgres.Config
		err  error
	}{
		{"NoURL", postgres.Config{Prefix: "p", MaxConns: 1}, postgres.ErrURLRequired},
		{"NoPrefix", postgres.Config{URL: ok.URL, MaxConns: 1}, postgres.ErrPrefixRequired},
		{"LongPrefix", postgres.Config{URL: ok.URL, Prefix: strings.Repeat("p", 257), MaxConns: 1}, postgres.ErrInvalidPrefix},
		{"NULPrefix", postgres.Config{URL: ok.URL, Prefix: "a\x00b", MaxConns: 1}, postgres.ErrInvalidPrefix},
		{"BadUTF8Prefix", postgres.Config{URL: ok.URL, Prefix: "\xff", MaxConns: 1}, postgres.ErrInvalidPrefix},
		{"ZeroConns", postgres.Config{URL: ok.URL, Prefix: "p"}, postgres.ErrInvalidMaxConns},
		{"NegativeConns", postgres.Config{URL: ok.URL, Prefix: "p", MaxConns: -1}, postgres.ErrInvalidMaxConns},
		{"HugeConns", postgres.Config{URL: ok.URL, Prefix: "p", MaxConns: 1 << 40}, postgres.ErrInvalidMaxConns},
		{"URLFirst", postgres.Config{}, postgres.ErrURLRequired},
		{"NoLease", postgres.Config{URL: ok.URL, Prefix: "p", MaxConns: 1}, postgres.ErrInvalidArchiveLease},
		{"NegativeLease", ok.With(postgres.Config{ArchiveLease: -time.Second}), postgres.ErrInvalidArchiveLease},
		{"SubMillisecondLease", ok.With(postgres.Config{ArchiveLease: time.Microsecond}), postgres.ErrInvalidArchiveLease},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.ErrorIs(t, tc.cfg.Validate(), tc.err)
		})
	}
}

func TestNewPersistenceValidates(t *testing.T) {
	p, err := postgres.NewPersistence(postgres.Config{MaxConns: -1})
	require.ErrorIs(t, err, postgres.ErrInvalidMaxConns)
	require.Nil(t, p)
}

func TestNewPersistenceBadURL(t *testing.T) {
	for _, url := range []string{
		"postgres://localhost:5432/db?sslmode=bogus",
		"postgres://%zz",
		"not a url at all = =",
	} {
		p, err := postgres.NewPersistence(postgres.Config{URL: url})
		require.ErrorIs(t, err, postgres.ErrInvalidURL, url)
		require.Nil(t, p)
	}
}

func TestConfigPoolAndLogger(t *testing.T) {
	pool := &pgxpool.Pool{}
	log := slog.New(slog.DiscardHandler)
	cfg := postgres.DefaultConfig().With(postgres.Config{Pool: pool, Logger: log})
	require.Same(t, pool, cfg.Pool)
	require.Same(t, log, cfg.Logger)
	cfg = cfg.With(postgres.Config{Prefix: "p"})
	require.Same(t, pool, cfg.Pool)
	require.Same(t, log, cfg.Logger)

	// A Pool stands in for URL and MaxConns.
	require.NoError(t, postgres.Config{
		Pool: pool, Prefix: "p", ArchiveLease: time.Second,
	}.Validate())
	require.ErrorIs(t, postgres.Config{Pool: pool}.Validate(), postgres.ErrPrefixRequired)
}
