package raft

import (
	"math"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestConfigDefaults(t *testing.T) {
	require.Equal(t, Config{
		LogTailSize: DefaultLogTailSize, MaxForwardConns: DefaultMaxForwardConns,
		ArchiveLease: DefaultArchiveLease,
	}, DefaultConfig())
	require.Equal(t, 20480, DefaultLogTailSize)
}

func TestConfigWith(t *testing.T) {
	servers := []Server{{ID: "a", Address: "127.0.0.1:1"}}
	c := DefaultConfig().With(Config{LocalID: "a", Servers: servers})
	require.Equal(t, "a", c.LocalID)
	require.Equal(t, DefaultLogTailSize, c.LogTailSize)
	require.Equal(t, servers, c.Servers)
	servers[0].ID = "changed"
	require.Equal(t, "a", c.Servers[0].ID, "With copies Servers")
	require.Equal(t, 100, c.With(Config{LogTailSize: 100}).LogTailSize)
}

func TestConfigValidate(t *testing.T) {
	ok := Config{
		LocalID: "a", Address: "127.0.0.1:7000", DataDir: "/tmp/x",
		LogTailSize: DefaultLogTailSize, ArchiveLease: time.Second,
	}
	require.NoError(t, ok.Validate())
	cases := []struct {
		name string
		edit func(*Config)
		err  error
	}{
		{"no ID", func(c *Config) { c.LocalID = "" }, ErrLocalIDRequired},
		{"no address", func(c *Config) { c.Address = "" }, ErrAddressRequired},
		{"bad address", func(c *Config) { c.Address = "localhost" }, ErrInvalidAddress},
		{"no port", func(c *Config) { c.Address = "localhost:" }, ErrInvalidAddress},
		{"no dir", func(c *Config) { c.DataDir = "" }, ErrDataDirRequired},
		{"tiny tail", func(c *Config) { c.LogTailSize = 1 }, ErrLogTailSizeTooSmall},
		{"huge tail", func(c *Config) { c.LogTailSize = math.MaxInt }, ErrLogTailSizeTooLarge},
		{"tail past max", func(c *Config) { c.LogTailSize = MaxLogTailSize + 1 }, ErrLogTailSizeTooLarge},
		{"negative lease", func(c *Config) { c.ArchiveLease = -time.Second }, ErrInvalidArchiveLease},
		{"bad server", func(c *Config) {
			c.Servers = []Server{{ID: "a", Address: "nope"}}
		}, ErrInvalidServer},
		{"missing local", func(c *Config) {
			c.Servers = []Server{{ID: "b", Address: "127.0.0.1:1"}}
		}, ErrBootstrapMissingLocalServer},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			require.ErrorIs(t, c.Validate(), tc.err)
			p, err := NewPersistence(c)
			require.ErrorIs(t, err, tc.err)
			require.Nil(t, p)
		})
	}
}

func TestOpenFailsWhenAddressTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer func() { _ = ln.Close() }()
	dir := t.TempDir()
	cfg := Config{LocalID: "a", Address: ln.Addr().String(), DataDir: dir, tuning: singleTuning()}
	p, err := NewPersistence(cfg)
	require.Error(t, err)
	require.Nil(t, p)

	// Nothing was left open: the same directory opens on a free address.
	cfg.Address = "127.0.0.1:0"
	p, err = NewPersistence(cfg)
	require.NoError(t, err)
	waitReady(t, p)
	require.NoError(t, p.Close())
}

func TestOpenFailsWhenDataDirIsFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, []byte("x"), 0o600))
	p, err := NewPersistence(Config{LocalID: "a", Address: "127.0.0.1:0", DataDir: file})
	require.Error(t, err)
	require.Nil(t, p)
}

func TestOpenFailsOnCorruptFiles(t *testing.T) {
	for _, name := range []string{stateFile, logFile} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			garbage := make([]byte, 64<<10)
			for i := range garbage {
				garbage[i] = byte(i * 7)
			}
			require.NoError(t, os.WriteFile(filepath.Join(dir, name), garbage, 0o600))
			// A state file marked clean is trusted, so its damage shows.
			require.NoError(t, os.WriteFile(filepath.Join(dir, cleanFile), nil, 0o600))
			p, err := NewPersistence(Config{LocalID: "a", Address: "127.0.0.1:0", DataDir: dir})
			require.Error(t, err)
			require.Nil(t, p)
		})
	}
}

func TestOpenFailsWhenDataDirInUse(t *testing.T) {
	p := newSingle(t, Config{})
	cfg := p.cfg
	cfg.Address = "127.0.0.1:0"
	q, err := NewPersistence(cfg)
	require.Error(t, err, "the bolt files are locked by the running node")
	require.Nil(t, q)
}
