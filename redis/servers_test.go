package redis

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox/internal/testserver"
)

// serverBinaries returns the paths of redis-server and redis-cli, skipping
// t (or failing it when servers are required) when they are missing.
func serverBinaries(t testing.TB) (server, cli string) {
	t.Helper()
	server, err1 := exec.LookPath("redis-server")
	cli, err2 := exec.LookPath("redis-cli")
	if err1 != nil || err2 != nil {
		msg := "redis-server and redis-cli must be on PATH"
		if testserver.Required() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return server, cli
}

// freePort returns a loopback port that is free, and whose cluster bus
// port (port+10000) is free too.
func freePort(t testing.TB) int {
	t.Helper()
	for range 100 {
		port := 20000 + rand.IntN(30000)
		if portFree(port) && portFree(port+10000) {
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

func portFree(port int) bool {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	_ = ln.Close()
	return true
}

// startServer starts a throw-away redis-server on a free loopback port with
// extra arguments, waits until it answers, and kills it when t ends. It
// returns the server's address.
func startServer(t testing.TB, password string, extra ...string) string {
	t.Helper()
	addr, _ := runServer(t, nil, password, extra...)
	return addr
}

// runServer is startServer with the server's command line prefixed by
// wrap (nil for none; valgrind's, say), and returns the process too.
func runServer(t testing.TB, wrap []string, password string, extra ...string) (string, *os.Process) {
	t.Helper()
	bin, _ := serverBinaries(t)
	dir := t.TempDir()
	port := freePort(t)
	args := append(append(slices.Clone(wrap), bin,
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir,
	), extra...)
	if password != "" {
		args = append(args, "--requirepass", password)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = nil, nil
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	c := redis.NewClient(&redis.Options{
		Addr: addr, Password: password, DisableIdentity: true,
		MaintNotificationsConfig: noMaintNotifications(),
	})
	defer func() { _ = c.Close() }()
	waitFor(t, "redis-server at "+addr, func(ctx context.Context) bool {
		return c.Ping(ctx).Err() == nil
	})
	return addr, cmd.Process
}

// startCluster starts three cluster-mode masters and joins them into one
// cluster covering every slot. It returns their addresses.
func startCluster(t *testing.T) []string {
	t.Helper()
	_, cli := serverBinaries(t)
	addrs := make([]string, 3)
	for i := range addrs {
		conf := filepath.Join(t.TempDir(), "nodes.conf")
		addrs[i] = startServer(t, "",
			"--cluster-enabled", "yes", "--cluster-config-file", conf,
			"--cluster-node-timeout", "5000",
		)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	out, err := exec.Command(cli, args...).CombinedOutput()
	require.NoError(t, err, "redis-cli --cluster create: %s", out)
	for _, a := range addrs {
		c := redis.NewClient(&redis.Options{
			Addr: a, DisableIdentity: true,
			MaintNotificationsConfig: noMaintNotifications(),
		})
		waitFor(t, "cluster state ok at "+a, func(ctx context.Context) bool {
			info, err := c.ClusterInfo(ctx).Result()
			return err == nil && strings.Contains(info, "cluster_state:ok")
		})
		_ = c.Close()
	}
	return addrs
}

// waitFor polls ok until it holds, failing t after a generous timeout.
func waitFor(t testing.TB, what string, ok func(context.Context) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for !ok(ctx) {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
