package redis

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
)

// An ACL user limited to the store's Prefix (~<Prefix>:*) runs every
// kind of call: every key the backend touches is under its Prefix. A
// wrong password or an unknown user is refused at open.
func TestACLUser(t *testing.T) {
	addr := startServer(t, "")
	admin := redis.NewClient(&redis.Options{
		Addr: addr, DisableIdentity: true,
		MaintNotificationsConfig: noMaintNotifications(),
	})
	t.Cleanup(func() { _ = admin.Close() })
	ctx := context.Background()
	cfg := testConfig(t, Config{Addr: addr})
	require.NoError(t, admin.Do(ctx, "ACL", "SETUSER", "app", "on", ">app-pass",
		"resetkeys", "~"+cfg.Prefix+":*", "+@all").Err())

	for _, bad := range []Config{
		{Username: "app", Password: "wrong"},
		{Username: "nobody", Password: "app-pass"},
	} {
		p, err := NewPersistence(cfg, bad)
		require.Error(t, err)
		require.Nil(t, p)
	}

	p, err := NewPersistence(cfg, Config{Username: "app", Password: "app-pass"})
	require.NoError(t, err)
	st, err := p.NewStore(timebox.Config{Indexer: dataIndexer})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	id := timebox.NewAggregateID("acct", "1")
	require.NoError(t, st.AppendEvents(id, 0, []*timebox.Event{event("open")}))
	require.NoError(t, st.PutSnapshot(id, "state", 1))
	evs, err := st.GetEvents(id, 0)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	ids, err := st.ListAggregatesByLabel("k", "open")
	require.NoError(t, err)
	require.Equal(t, []timebox.AggregateID{id}, ids)
	ids, err = st.ListAggregates(timebox.NewAggregateID("acct"))
	require.NoError(t, err)
	require.Equal(t, []timebox.AggregateID{id}, ids)
	require.NoError(t, st.Archive(id))
	require.NoError(t, st.ConsumeArchive(ctx, func(_ context.Context, r *timebox.ArchiveRecord) error {
		require.Equal(t, id, r.AggregateID)
		return nil
	}))
	// The feed, its blocking reads (their own pool) and durable consumers.
	evs, err = p.ReadFeed(ctx, timebox.FeedRequest{Limit: 10, Wait: time.Millisecond})
	require.NoError(t, err)
	require.Len(t, evs, 1)
	evs, err = p.ReadFeed(ctx, timebox.FeedRequest{After: evs[0].Position, Limit: 10, Wait: 5 * time.Millisecond})
	require.NoError(t, err)
	require.Empty(t, evs)
	cctx, cancel := context.WithCancel(ctx)
	require.ErrorIs(t, st.Consume(cctx, "acl", func(context.Context, *timebox.Event) error {
		cancel()
		return nil
	}), context.Canceled)
	infos, err := st.Consumers(ctx)
	require.NoError(t, err)
	require.Len(t, infos, 1)
	require.Equal(t, timebox.Position{Commit: 1}, infos[0].Partitions[0].Checkpoint)
	require.NoError(t, st.DeleteConsumer(ctx, "acl"))
	who, err := p.client.Do(ctx, "ACL", "WHOAMI").Text()
	if err == nil { // +@all allows it; the point is who answers
		require.Equal(t, "app", who)
	}
}

// ListAggregates checks each pipelined command's own error: a refused
// range read is an error, even though the prefix's own ZSCORE answers
// redis.Nil first.
func TestListAggregatesRangeError(t *testing.T) {
	addr := startServer(t, "")
	admin := redis.NewClient(&redis.Options{
		Addr: addr, DisableIdentity: true,
		MaintNotificationsConfig: noMaintNotifications(),
	})
	t.Cleanup(func() { _ = admin.Close() })
	ctx := context.Background()
	require.NoError(t, admin.Do(ctx, "ACL", "SETUSER", "nolex", "on", ">pw",
		"~*", "+@all", "-zrangebylex").Err())
	st := newStore(t, Config{Addr: addr, Username: "nolex", Password: "pw"}, timebox.Config{})
	require.NoError(t, st.AppendEvents(timebox.NewAggregateID("a", "1"), 0,
		[]*timebox.Event{event("x")}))
	ids, err := st.ListAggregates(timebox.NewAggregateID("a"))
	require.ErrorContains(t, err, "NOPERM")
	require.Nil(t, ids)
}

// TLS: a private redis-server serving only TLS, with a certificate from a
// throw-away CA made here. A store given the CA works, by TLS and by a
// rediss:// URL; without the CA, or without TLS, NewPersistence fails.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	roots := writeTestCerts(t, dir)
	addr := startTLSServer(t, dir, roots)
	tlsCfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}

	for _, cfg := range []Config{
		{Addr: addr, TLS: tlsCfg},
		{Addr: "rediss://" + addr, TLS: tlsCfg},
	} {
		st := newStore(t, cfg, timebox.Config{})
		id := timebox.NewAggregateID("tls")
		require.NoError(t, st.AppendEvents(id, 0, []*timebox.Event{event("secret")}))
		evs, err := st.GetEvents(id, 0)
		require.NoError(t, err)
		require.Len(t, evs, 1)
		require.NoError(t, st.Close())
	}

	for _, cfg := range []Config{
		{Addr: "rediss://" + addr, DialTimeout: time.Second}, // system roots only
		{Addr: addr, DialTimeout: time.Second, ReadTimeout: time.Second},
	} {
		p, err := NewPersistence(cfg)
		require.Error(t, err, "%+v", cfg)
		require.Nil(t, p)
	}
}

// writeTestCerts writes ca.crt, server.crt and server.key (for 127.0.0.1)
// into dir and returns a pool holding the CA.
func writeTestCerts(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "timebox test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	caCert, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)

	write := func(name, typ string, der []byte) {
		f := filepath.Join(dir, name)
		data := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
		require.NoError(t, os.WriteFile(f, data, 0o600))
	}
	write("ca.crt", "CERTIFICATE", caDER)
	write("server.crt", "CERTIFICATE", leafDER)
	write("server.key", "EC PRIVATE KEY", keyDER)
	roots := x509.NewCertPool()
	roots.AddCert(caCert)
	return roots
}

// startTLSServer starts a redis-server that listens only for TLS, with the
// certificates in dir, and returns its address once it answers.
func startTLSServer(t *testing.T, dir string, roots *x509.CertPool) string {
	t.Helper()
	bin, _ := serverBinaries(t)
	port := freePort(t)
	cmd := exec.Command(bin,
		"--port", "0", "--tls-port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--tls-cert-file", filepath.Join(dir, "server.crt"),
		"--tls-key-file", filepath.Join(dir, "server.key"),
		"--tls-ca-cert-file", filepath.Join(dir, "ca.crt"),
		"--tls-auth-clients", "no",
		"--save", "", "--appendonly", "no", "--dir", dir,
	)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	c := redis.NewClient(&redis.Options{
		Addr: addr, DisableIdentity: true,
		TLSConfig:                &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		MaintNotificationsConfig: noMaintNotifications(),
	})
	defer func() { _ = c.Close() }()
	waitFor(t, "TLS redis-server at "+addr, func(ctx context.Context) bool {
		return c.Ping(ctx).Err() == nil
	})
	return addr
}
