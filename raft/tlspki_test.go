package raft

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// testCA is a throw-away certificate authority, made fresh by each test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t testing.TB, name string) *testCA {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          newSerial(t),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

func newSerial(t testing.TB) *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	require.NoError(t, err)
	return n
}

// issue returns a node certificate for name, valid for 127.0.0.1 and
// localhost, for both the server and the client side.
func (ca *testCA) issue(t testing.TB, name string) *tls.Certificate {
	return ca.issueFor(t, name, []net.IP{net.IPv4(127, 0, 0, 1)}, []string{"localhost"})
}

// issueFor is issue for the given addresses.
func (ca *testCA) issueFor(t testing.TB, name string, ips []net.IP, dns []string) *tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: newSerial(t),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  ips,
		DNSNames:     dns,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	leaf, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// nodeTLS is a node's Config.TLS with a fixed certificate.
func (ca *testCA) nodeTLS(t testing.TB, name string) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{*ca.issue(t, name)}, RootCAs: ca.pool}
}

// rotatingCert serves whichever certificate was set last, for both sides.
type rotatingCert struct {
	cur atomic.Pointer[tls.Certificate]
}

func (r *rotatingCert) config(ca *testCA) *tls.Config {
	return &tls.Config{
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return r.cur.Load(), nil
		},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return r.cur.Load(), nil
		},
		RootCAs: ca.pool,
	}
}

// startTLSCluster is startCluster with each node's Config edited before
// it starts, there to give it TLS.
func startTLSCluster(
	t testing.TB, n int, tune *tuning, publish bool, edit func(i int, cfg *Config),
) *cluster {
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	c := startCluster(t, n, tune, publish, all...)
	for i := range c.cfgs {
		edit(i, &c.cfgs[i])
	}
	for i := range n {
		c.start(i)
	}
	for i := range n {
		waitReady(t, c.nodes[i])
	}
	return c
}

// newTLSCluster is newCluster over mutual TLS with certificates of ca.
func newTLSCluster(t testing.TB, n int, tune *tuning, ca *testCA) *cluster {
	return startTLSCluster(t, n, tune, true, func(i int, cfg *Config) {
		cfg.TLS = ca.nodeTLS(t, fmt.Sprint("n", i))
	})
}
