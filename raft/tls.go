package raft

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"sync"
	"time"
)

// validateTLS checks that cfg, when set, can run mutual TLS: it returns
// ErrTLSCertificateRequired when a side has no certificate,
// ErrTLSRootCAsRequired without RootCAs (nil would trust the system's
// public CAs) and ErrTLSInsecure with InsecureSkipVerify.
func validateTLS(cfg *tls.Config) error {
	if cfg == nil {
		return nil
	}
	certs := len(cfg.Certificates) > 0 || cfg.GetCertificate != nil
	switch {
	case !certs && cfg.GetConfigForClient == nil:
		return ErrTLSCertificateRequired
	case !certs && cfg.GetClientCertificate == nil:
		return ErrTLSCertificateRequired
	case cfg.RootCAs == nil:
		return ErrTLSRootCAsRequired
	case cfg.InsecureSkipVerify:
		return ErrTLSInsecure
	}
	return nil
}

// peerTLS is Config.TLS split into the side that accepts and the side that
// dials.
type peerTLS struct {
	server *tls.Config
	client *tls.Config
}

func newPeerTLS(cfg *tls.Config) *peerTLS {
	server := cfg.Clone()
	requireClientCert(server, nil)
	// Nodes keep their connections and never resume a session, so a
	// session ticket would only cost the handshake work.
	server.SessionTicketsDisabled = true
	if user := cfg.GetConfigForClient; user != nil {
		cas := server.ClientCAs
		server.GetConfigForClient = func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
			c, err := user(hi)
			if c == nil || err != nil {
				return c, err
			}
			c = c.Clone()
			requireClientCert(c, cas)
			c.SessionTicketsDisabled = true
			return c, nil
		}
	}
	client := cfg.Clone()
	client.GetConfigForClient = nil
	if client.GetClientCertificate == nil && len(client.Certificates) == 0 {
		get := cfg.GetCertificate
		client.GetClientCertificate = func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return get(&tls.ClientHelloInfo{
				SignatureSchemes:  cri.SignatureSchemes,
				SupportedVersions: []uint16{cri.Version},
			})
		}
	}
	if get := client.GetClientCertificate; get != nil {
		// crypto/tls lets GetCertificate return no certificate (a
		// rotating holder not loaded yet, say), but dereferences what
		// GetClientCertificate returns: no certificate fails the dial.
		client.GetClientCertificate = func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c, err := get(cri)
			if c == nil && err == nil {
				err = errNoCertificate
			}
			return c, err
		}
	}
	return &peerTLS{server: server, client: client}
}

// errNoCertificate is a dial's error when the Config gave no certificate
// to present.
var errNoCertificate = errors.New("raft: TLS: no certificate to present")

// requireClientCert makes an accepting side demand and verify the dialling
// node's certificate against ClientCAs, else RootCAs, else cas.
func requireClientCert(c *tls.Config, cas *x509.CertPool) {
	c.ClientAuth = tls.RequireAndVerifyClientCert
	if c.ClientCAs == nil {
		c.ClientCAs = c.RootCAs
	}
	if c.ClientCAs == nil {
		c.ClientCAs = cas
	}
}

// clientFor is the dialling side's Config for addr: it verifies the name
// addr was dialled by, unless ServerName says otherwise.
func (t *peerTLS) clientFor(addr string) *tls.Config {
	if t.client.ServerName != "" {
		return t.client
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	c := t.client.Clone()
	c.ServerName = host
	return c
}

// Rejected connections are logged once per remote host per rejectEvery;
// rejectHosts bounds how many hosts are remembered.
const (
	rejectEvery = time.Minute
	rejectHosts = 1024
)

// rejectLog rate-limits the warnings about rejected connections, so a
// peer with a bad certificate, or a scanner, cannot flood the log.
type rejectLog struct {
	mu   sync.Mutex
	last map[string]time.Time
}

// first reports whether host's rejection at now is the first in
// rejectEvery, and records it.
func (r *rejectLog) first(host string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t, ok := r.last[host]; ok && now.Sub(t) < rejectEvery {
		return false
	}
	if r.last == nil || len(r.last) >= rejectHosts {
		r.last = map[string]time.Time{}
	}
	r.last[host] = now
	return true
}
