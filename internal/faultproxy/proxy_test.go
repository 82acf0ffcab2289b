package faultproxy_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kode4food/timebox/internal/faultproxy"
	"github.com/kode4food/timebox/internal/testserver"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// client returns a go-redis client on addr that never retries and keeps
// one connection, closed when t ends.
func client(t *testing.T, addr string) *goredis.Client {
	c := goredis.NewClient(&goredis.Options{
		Addr: addr, MaxRetries: -1, PoolSize: 1, ReadTimeout: 10 * time.Second,
	})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// counter returns a fresh key, deleted when t ends.
func counter(t *testing.T, direct *goredis.Client) string {
	key := testserver.Prefix(t) + ":n"
	t.Cleanup(func() { direct.Del(context.Background(), key) })
	return key
}

// resp is a raw RESP connection, so every byte the test sends is one
// command and nothing is sent behind its back.
type resp struct {
	net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, addr string) *resp {
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return &resp{Conn: c, r: bufio.NewReader(c)}
}

// do sends a command and returns the first line of the reply.
func (c *resp) do(args ...string) (string, error) {
	cmd := fmt.Sprintf("*%d\r\n", len(args))
	for _, a := range args {
		cmd += fmt.Sprintf("$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(cmd)); err != nil {
		return "", err
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	return c.r.ReadString('\n')
}

func TestPing(t *testing.T) {
	p := faultproxy.New(t, testserver.RedisAddr(t))
	c := client(t, p.Addr())
	require.NoError(t, c.Ping(context.Background()).Err())
	require.EqualValues(t, 1, p.Accepted())
}

func TestDropNextReply(t *testing.T) {
	addr := testserver.RedisAddr(t)
	ctx := context.Background()
	direct := client(t, addr)
	key := counter(t, direct)
	p := faultproxy.New(t, addr)
	c := client(t, p.Addr())
	require.NoError(t, c.Ping(ctx).Err(), "open the pooled connection")

	p.DropNextReply()
	require.Error(t, c.Incr(ctx, key).Err(), "the reply was swallowed")
	n, err := direct.Get(ctx, key).Int()
	require.NoError(t, err)
	require.Equal(t, 1, n, "the command ran all the same")
	require.EqualValues(t, 1, p.Dropped())

	n64, err := c.Incr(ctx, key).Result()
	require.NoError(t, err, "only one reply is dropped")
	require.EqualValues(t, 2, n64)
	require.EqualValues(t, 1, p.Dropped())
}

func TestDropReplies(t *testing.T) {
	addr := testserver.RedisAddr(t)
	direct := client(t, addr)
	key := counter(t, direct)
	p := faultproxy.New(t, addr)

	p.DropReplies(true)
	for range 3 {
		_, err := dial(t, p.Addr()).do("INCR", key)
		require.Error(t, err)
	}
	p.DropReplies(false)
	line, err := dial(t, p.Addr()).do("INCR", key)
	require.NoError(t, err)
	require.Equal(t, ":4\r\n", line, "every dropped command still ran")
	require.EqualValues(t, 3, p.Dropped())
}

func TestCutAll(t *testing.T) {
	p := faultproxy.New(t, testserver.RedisAddr(t))
	a, b := dial(t, p.Addr()), dial(t, p.Addr())
	for _, c := range []*resp{a, b} {
		line, err := c.do("PING")
		require.NoError(t, err)
		require.Equal(t, "+PONG\r\n", line)
	}
	p.CutAll()
	for _, c := range []*resp{a, b} {
		_, err := c.do("PING")
		require.Error(t, err)
	}
	line, err := dial(t, p.Addr()).do("PING")
	require.NoError(t, err, "new connections are still accepted")
	require.Equal(t, "+PONG\r\n", line)
}

func TestCutAllWakesBlockedClient(t *testing.T) {
	p := faultproxy.New(t, testserver.RedisAddr(t))
	c := client(t, p.Addr())
	errs := make(chan error, 1)
	go func() {
		errs <- c.BLPop(context.Background(), 30*time.Second,
			testserver.Prefix(t)+":never").Err()
	}()
	require.Eventually(t, func() bool { return p.Accepted() == 1 },
		10*time.Second, 5*time.Millisecond)
	// The command may not have reached the server yet; cut until it fails.
	for {
		p.CutAll()
		select {
		case err := <-errs:
			require.Error(t, err)
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func TestDelay(t *testing.T) {
	p := faultproxy.New(t, testserver.RedisAddr(t))
	c := dial(t, p.Addr())
	const d = 100 * time.Millisecond
	p.SetDelay(d)
	start := time.Now()
	line, err := c.do("PING")
	require.NoError(t, err)
	require.Equal(t, "+PONG\r\n", line)
	require.GreaterOrEqual(t, time.Since(start), 2*d, "request and reply")

	p.SetDelay(0)
	line, err = c.do("PING")
	require.NoError(t, err)
	require.Equal(t, "+PONG\r\n", line)
}

func TestCloseDuringDelay(t *testing.T) {
	p := faultproxy.New(t, testserver.RedisAddr(t))
	c := dial(t, p.Addr())
	p.SetDelay(time.Hour)
	errs := make(chan error, 1)
	go func() {
		_, err := c.do("PING")
		errs <- err
	}()
	require.Eventually(t, func() bool { return p.Accepted() == 1 },
		10*time.Second, 5*time.Millisecond)
	require.NoError(t, p.Close())
	require.Error(t, <-errs)
	require.NoError(t, p.Close(), "a second Close is harmless")
	_, err := net.DialTimeout("tcp", p.Addr(), time.Second)
	require.Error(t, err, "no longer listening")
}

func TestUnreachableTarget(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := ln.Addr().String()
	require.NoError(t, ln.Close())

	p := faultproxy.New(t, dead)
	_, err = dial(t, p.Addr()).do("PING")
	require.Error(t, err, "the client's connection is closed")
}
