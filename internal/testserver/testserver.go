// Package testserver finds the servers the backend tests run against.
//
// Each server's address comes from an environment variable with a local
// default. A test that cannot reach its server is skipped with a message
// naming the variable, unless TIMEBOX_REQUIRE_SERVERS=1 (set by CI), in
// which case it fails.
package testserver

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
)

// Environment variables and their defaults.
const (
	PostgresEnv     = "TIMEBOX_POSTGRES_URL"
	PostgresDefault = "postgres://root@127.0.0.1:5432/test?sslmode=disable"
	RedisEnv        = "TIMEBOX_REDIS_ADDR"
	RedisDefault    = "127.0.0.1:6379"
	RequireEnv      = "TIMEBOX_REQUIRE_SERVERS"
)

// PostgresURL returns the PostgreSQL URL for tests, after checking that
// its host accepts connections.
func PostgresURL(t testing.TB) string {
	t.Helper()
	u := env(PostgresEnv, PostgresDefault)
	addr := "127.0.0.1:5432"
	if pu, err := url.Parse(u); err == nil && pu.Host != "" {
		addr = pu.Host
		if pu.Port() == "" {
			addr = net.JoinHostPort(pu.Hostname(), "5432")
		}
	}
	reach(t, PostgresEnv, addr)
	return u
}

// RedisAddr returns the Redis address for tests, after checking that it
// accepts connections.
func RedisAddr(t testing.TB) string {
	t.Helper()
	a := env(RedisEnv, RedisDefault)
	reach(t, RedisEnv, strings.Split(a, ",")[0])
	return a
}

// Required reports whether missing servers fail tests rather than skip
// them.
func Required() bool {
	return os.Getenv(RequireEnv) == "1"
}

// Prefix returns a name unique to this run of t, usable as a store prefix
// or namespace: lowercase letters, digits and underscores.
func Prefix(t testing.TB) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return '_'
	}, t.Name())
	if len(name) > 40 {
		name = name[len(name)-40:]
	}
	return "t_" + name + "_" + hex.EncodeToString(b[:])
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func reach(t testing.TB, envName, addr string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err == nil {
		_ = conn.Close()
		return
	}
	msg := "server at " + addr + " unreachable (set " + envName + "): " + err.Error()
	if Required() {
		t.Fatal(msg)
	}
	t.Skip(msg)
}
