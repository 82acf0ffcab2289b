package raft

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/conformance"
	"github.com/kode4food/timebox/internal/testlog"
)

// The cluster scenarios — election, forwarding, leader loss, restart —
// over mutual TLS.
func TestTLSCluster(t *testing.T) {
	ca := newTestCA(t, "cluster")
	c := newTLSCluster(t, 3, clusterTuning(), ca)
	id := timebox.NewAggregateID("order", "tls")

	old := c.leader()
	f := c.followers()[0]
	st := c.store(f)
	require.NoError(t, st.AppendEvents(id, 0, items("a", 2)))
	evs, err := st.GetEvents(id, 0)
	require.NoError(t, err)
	require.Equal(t, quoted("a", 0, 2), datas(evs), "a follower forwards and reads its own write")

	c.stop(old)
	next := c.leader()
	require.NotEqual(t, old, next)
	seq := int64(2)
	for i, p := range c.nodes {
		if p != nil {
			require.NoError(t, c.store(i).AppendEvents(id, seq, items(fmt.Sprint("b", i, "-"), 1)))
			seq++
		}
	}

	c.start(old)
	waitReady(t, c.nodes[old])
	for i := range c.nodes {
		c.synced(i)
		evs, err := c.store(i).GetEvents(id, 0)
		require.NoError(t, err)
		require.Len(t, evs, int(seq))
	}
	for i := range c.nodes {
		require.True(t, c.nodes[i].mux.cfg.tls != nil)
	}
}

// TestTLSRaceExecAcrossNodes races Exec on one aggregate through every
// node over TLS, with so few forwarding slots that forwarded requests wait
// for one, and checks the exact log on each.
func TestTLSRaceExecAcrossNodes(t *testing.T) {
	ca := newTestCA(t, "cluster")
	c := startTLSCluster(t, 3, clusterTuning(), false, func(i int, cfg *Config) {
		cfg.TLS = ca.nodeTLS(t, fmt.Sprint("n", i))
		cfg.MaxForwardConns = 2
	})
	stores := make([]*timebox.Store, len(c.nodes))
	for i := range c.nodes {
		stores[i] = c.store(i, timebox.Config{MaxRetries: 1000})
	}
	conformance.RaceExec(t, stores, 8, 10)
}

// A follower that was down while the other nodes compacted their logs
// catches up by installing a snapshot over TLS. Both of them compact: a
// leader change after the restart (a loaded machine may see one) would
// otherwise let a node that still holds the entries send them instead.
func TestTLSSnapshotInstall(t *testing.T) {
	ca := newTestCA(t, "cluster")
	tune := clusterTuning()
	tune.trailingLogs = 4
	tune.snapshotThreshold = 1 << 30
	tune.snapshotInterval = time.Hour
	c := newTLSCluster(t, 3, tune, ca)
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitLong)
	defer cancel()
	id := timebox.NewAggregateID("snap")
	f := c.followers()[0]
	away := c.nodes[f]
	c.stop(f)

	st := c.store(c.leader())
	const writes = 10
	for seq := range int64(writes) {
		require.NoError(t, st.AppendEvents(id, seq, items(fmt.Sprint("s", seq, "-"), 1)))
	}
	var others []*Persistence
	for _, p := range c.nodes {
		if p != nil {
			others = append(others, p)
		}
	}
	snap, err := compactPast(ctx, others, away)
	require.NoError(t, err)

	c.start(f)
	waitReady(t, c.nodes[f])
	require.NoError(t, waitFor(ctx, "the follower to install a snapshot", func() (bool, error) {
		return snapshotIndex(c.nodes[f]) >= snap, nil
	}))
	c.synced(f)
	evs, err := c.store(f).GetEvents(id, 0)
	require.NoError(t, err)
	require.Len(t, evs, writes)
}

// tlsNode is a single TLS node, the aggregate the rejection tests try to
// write, and a valid forwarding request for it.
type tlsNode struct {
	p   *Persistence
	ca  *testCA
	id  timebox.AggregateID
	req []byte
}

func newTLSNode(t *testing.T, cfg *tls.Config, ca *testCA, logs io.Writer) *tlsNode {
	var logger *slog.Logger
	if logs != nil {
		logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	p := newSingle(t, Config{TLS: cfg, Logger: logger})
	id := timebox.NewAggregateID("guarded")
	req := timebox.AppendRequest{ID: id, Events: items("x", 1)}
	return &tlsNode{p: p, ca: ca, id: id, req: encodeAppend(req)}
}

// forward sends the node's request on c as a forwarding connection and
// returns the reply's code.
func (n *tlsNode) forward(c net.Conn) (byte, error) {
	_ = c.SetDeadline(time.Now().Add(waitLong))
	if _, err := c.Write([]byte{protoForward}); err != nil {
		return 0, err
	}
	if err := writeFrame(c, fwdApply, n.req); err != nil {
		return 0, err
	}
	code, _, err := readFrame(c)
	return code, err
}

func (n *tlsNode) events(t *testing.T) int {
	evs, err := n.p.LoadEvents(context.Background(), n.id, 0)
	require.NoError(t, err)
	return len(evs)
}

// dialTLS opens a TLS connection to the node and sends the node's request
// on it, returning the reply's code, or the error of either.
func (n *tlsNode) dialTLS(cfg *tls.Config) (byte, error) {
	c, err := tls.Dial("tcp", n.p.mux.ln.Addr().String(), cfg)
	if err != nil {
		return 0, err
	}
	defer func() { _ = c.Close() }()
	return n.forward(c)
}

// Every connection without a valid certificate of the cluster's CA is
// refused before its first protocol byte is acted on; a node with one
// writes.
func TestTLSRejections(t *testing.T) {
	ca := newTestCA(t, "cluster")
	other := newTestCA(t, "other")
	configs := map[string]*tls.Config{
		"certificates": ca.nodeTLS(t, "solo"),
		// A GetConfigForClient that asks no client certificate still
		// gets one required.
		"config for client": {
			GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
				return &tls.Config{Certificates: []tls.Certificate{*ca.issue(t, "solo")}}, nil
			},
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				return ca.issue(t, "solo"), nil
			},
			RootCAs: ca.pool,
		},
	}
	for name, cfg := range configs {
		t.Run(name, func(t *testing.T) {
			var logs testlog.Buffer
			n := newTLSNode(t, cfg, ca, &logs)
			addr := n.p.mux.ln.Addr().String()

			plain, err := net.Dial("tcp", addr)
			require.NoError(t, err)
			defer func() { _ = plain.Close() }()
			_, err = n.forward(plain)
			require.Error(t, err, "plaintext")

			_, err = n.dialTLS(&tls.Config{RootCAs: ca.pool, ServerName: "localhost"})
			require.Error(t, err, "no client certificate")

			foreign := other.nodeTLS(t, "intruder")
			foreign.RootCAs = ca.pool
			_, err = n.dialTLS(foreign)
			require.Error(t, err, "a certificate of another CA")

			require.Zero(t, n.events(t), "nothing was written")

			code, err := n.dialTLS(ca.nodeTLS(t, "peer"))
			require.NoError(t, err)
			require.Equal(t, codeOK, code)
			require.Equal(t, 1, n.events(t))

			// Three rejections from one host: one warning.
			require.Eventually(t, func() bool {
				return strings.Contains(logs.String(), "rejected a connection")
			}, waitLong, time.Millisecond)
			require.Equal(t, 1, strings.Count(logs.String(), "rejected a connection"), logs.String())
			require.Contains(t, logs.String(), "level=WARN")
		})
	}
}

// A node refuses to speak to a peer whose certificate is not of its CA,
// or does not name the address it dialled.
func TestTLSDialRejectsPeer(t *testing.T) {
	ca := newTestCA(t, "cluster")
	other := newTestCA(t, "other")
	n := newTLSNode(t, ca.nodeTLS(t, "solo"), ca, nil)

	for name, cert := range map[string]*tls.Certificate{
		"other CA":   other.issue(t, "intruder"),
		"wrong name": nameless(t, ca),
	} {
		t.Run(name, func(t *testing.T) {
			srv := &tls.Config{
				Certificates: []tls.Certificate{*cert},
				ClientAuth:   tls.RequireAnyClientCert,
			}
			ln, err := tls.Listen("tcp", "127.0.0.1:0", srv)
			require.NoError(t, err)
			defer func() { _ = ln.Close() }()
			go acceptHandshake(ln)
			_, err = n.p.mux.dial(ln.Addr().String(), protoForward, waitLong)
			require.Error(t, err)
			require.ErrorContains(t, err, "certificate")
		})
	}
}

// TestTLSNoCertificateYet: a node whose certificate getter returns none
// (a rotating holder not loaded yet) fails its dials with an error; the
// nil certificate once reached crypto/tls, which crashed the process.
func TestTLSNoCertificateYet(t *testing.T) {
	ca := newTestCA(t, "cluster")
	none := func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return nil, nil }
	for name, cfg := range map[string]*tls.Config{
		"GetCertificate": {GetCertificate: none, RootCAs: ca.pool},
		"GetClientCertificate": {
			GetCertificate: none, RootCAs: ca.pool,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				return nil, nil
			},
		},
	} {
		t.Run(name, func(t *testing.T) {
			require.NoError(t, validateTLS(cfg))
			client := newPeerTLS(cfg).client.Clone()
			client.InsecureSkipVerify = true
			srv := &tls.Config{
				Certificates: []tls.Certificate{*ca.issue(t, "srv")},
				ClientAuth:   tls.RequireAnyClientCert,
			}
			a, b := net.Pipe()
			defer func() { _ = a.Close() }()
			go func() {
				_ = tls.Server(b, srv).Handshake()
				_ = b.Close()
			}()
			err := tls.Client(a, client).Handshake()
			require.ErrorIs(t, err, errNoCertificate)
		})
	}
}

// nameless is a certificate of ca valid for no address the tests use.
func nameless(t *testing.T, ca *testCA) *tls.Certificate {
	return ca.issueFor(t, "elsewhere", nil, []string{"elsewhere.invalid"})
}

// acceptHandshake accepts connections and runs their handshakes until ln
// closes.
func acceptHandshake(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		_ = c.(*tls.Conn).Handshake()
		_ = c.Close()
	}
}

// Rotation: after the certificate changes, new connections either way
// present the new one, and the cluster keeps working.
func TestTLSRotation(t *testing.T) {
	ca := newTestCA(t, "cluster")
	rot := make([]*rotatingCert, 3)
	c := startTLSCluster(t, 3, clusterTuning(), false, func(i int, cfg *Config) {
		rot[i] = &rotatingCert{}
		rot[i].cur.Store(ca.issue(t, fmt.Sprint("n", i)))
		cfg.TLS = rot[i].config(ca)
	})
	id := timebox.NewAggregateID("rotate")
	require.NoError(t, c.store(c.followers()[0]).AppendEvents(id, 0, items("a", 1)))

	seen := make(chan []byte, 16)
	srv := &tls.Config{
		Certificates: []tls.Certificate{*ca.issue(t, "observer")},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    ca.pool,
		VerifyConnection: func(cs tls.ConnectionState) error {
			seen <- cs.PeerCertificates[0].Raw
			return nil
		},
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv)
	require.NoError(t, err)
	defer func() { _ = ln.Close() }()
	go acceptHandshake(ln)

	client := ca.nodeTLS(t, "client")
	client.ServerName = "127.0.0.1"
	serverCert := func(i int) []byte {
		conn, err := tls.Dial("tcp", c.cfgs[i].Address, client)
		require.NoError(t, err)
		defer func() { _ = conn.Close() }()
		return conn.ConnectionState().PeerCertificates[0].Raw
	}
	clientCert := func(i int) []byte {
		conn, err := c.nodes[i].mux.dial(ln.Addr().String(), protoForward, waitLong)
		require.NoError(t, err)
		defer func() { _ = conn.Close() }()
		return <-seen
	}

	before := rot[0].cur.Load()
	require.Equal(t, before.Certificate[0], serverCert(0))
	require.Equal(t, before.Certificate[0], clientCert(0))
	for i := range rot {
		rot[i].cur.Store(ca.issue(t, fmt.Sprint("n", i, "-new")))
	}
	after := rot[0].cur.Load()
	require.Equal(t, after.Certificate[0], serverCert(0), "accepting side uses the new certificate")
	require.Equal(t, after.Certificate[0], clientCert(0), "dialing side uses the new certificate")

	// Restarted, a node connects to its peers afresh, with the new
	// certificates on both sides.
	f := c.followers()[0]
	c.stop(f)
	c.start(f)
	waitReady(t, c.nodes[f])
	require.NoError(t, c.store(f).AppendEvents(id, 1, items("b", 1)))
}

// The handshake timeout bounds a connection that starts a TLS handshake,
// or none, and stalls.
func TestTLSHandshakeTimeout(t *testing.T) {
	ca := newTestCA(t, "cluster")
	tune := singleTuning()
	tune.handshakeTimeout = 200 * time.Millisecond
	p, err := NewPersistence(Config{
		LocalID: "solo", Address: "127.0.0.1:0", DataDir: t.TempDir(),
		TLS: ca.nodeTLS(t, "solo"), tuning: tune,
	})
	require.NoError(t, err)
	defer func() { _ = p.Close() }()
	waitReady(t, p)

	for name, send := range map[string][]byte{
		"silent":              nil,
		"partial ClientHello": {0x16, 0x03, 0x01, 0x02, 0x00, 0x01},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := net.Dial("tcp", p.mux.ln.Addr().String())
			require.NoError(t, err)
			defer func() { _ = c.Close() }()
			_, err = c.Write(send)
			require.NoError(t, err)
			_ = c.SetReadDeadline(time.Now().Add(waitLong))
			_, err = io.ReadAll(c)
			require.False(t, errors.Is(err, os.ErrDeadlineExceeded), "the node closed it")
		})
	}
}

// A rejected peer is logged at warn once, however often it tries.
func TestTLSRejectLoggedOncePerHost(t *testing.T) {
	ca := newTestCA(t, "cluster")
	var out testlog.Buffer
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	m := newMux(ln, muxConfig{
		tls:    newPeerTLS(ca.nodeTLS(t, "solo")),
		logger: hclog.New(&hclog.LoggerOptions{Output: &out, Level: hclog.Debug}),
	})
	defer func() { _ = m.Close() }()

	// A connection that hangs up before sending a byte is only debug.
	probe, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	require.NoError(t, probe.Close())
	require.Eventually(t, func() bool {
		return strings.Contains(out.String(), "closed before its protocol began")
	}, waitLong, time.Millisecond)
	require.NotContains(t, out.String(), "[WARN]")

	for range 5 {
		c, err := net.Dial("tcp", ln.Addr().String())
		require.NoError(t, err)
		_, _ = c.Write([]byte{protoForward, 0, 0, 0, 1, fwdReadIndex})
		_ = c.SetReadDeadline(time.Now().Add(waitLong))
		_, _ = io.ReadAll(c) // returns once the mux has logged and closed it
		_ = c.Close()
	}
	logged := out.String()
	require.Equal(t, 1, strings.Count(logged, "rejected a connection"), logged)
	require.Contains(t, logged, "[WARN]")
	require.Contains(t, logged, "127.0.0.1")
}

func TestRejectLogRateLimit(t *testing.T) {
	var r rejectLog
	now := time.Now()
	require.True(t, r.first("a", now))
	require.False(t, r.first("a", now.Add(time.Second)))
	require.True(t, r.first("b", now.Add(time.Second)))
	require.True(t, r.first("a", now.Add(rejectEvery)))
	for i := range rejectHosts + 10 {
		r.first(fmt.Sprint("h", i), now)
	}
	require.LessOrEqual(t, len(r.last), rejectHosts)
}

func TestConfigTLS(t *testing.T) {
	ca := newTestCA(t, "cluster")
	ok := DefaultConfig().With(Config{LocalID: "a", Address: "127.0.0.1:7000", DataDir: "/tmp/x"})
	good := ca.nodeTLS(t, "a")
	c := ok.With(Config{TLS: good, MaxForwardConns: 3})
	require.Same(t, good, c.TLS)
	require.Equal(t, 3, c.MaxForwardConns)
	require.NoError(t, c.Validate())

	cases := []struct {
		name string
		cfg  *tls.Config
		err  error
	}{
		{"no certificate", &tls.Config{RootCAs: ca.pool}, ErrTLSCertificateRequired},
		{"no client certificate", &tls.Config{
			GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return nil, nil },
			RootCAs:            ca.pool,
		}, ErrTLSCertificateRequired},
		{"no CA", &tls.Config{Certificates: good.Certificates}, ErrTLSRootCAsRequired},
		{"insecure", &tls.Config{
			Certificates: good.Certificates, RootCAs: ca.pool, InsecureSkipVerify: true,
		}, ErrTLSInsecure},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			c.TLS = tc.cfg
			require.ErrorIs(t, c.Validate(), tc.err)
			p, err := NewPersistence(c)
			require.ErrorIs(t, err, tc.err)
			require.Nil(t, p)
		})
	}
	c = ok
	c.MaxForwardConns = -1
	require.ErrorIs(t, c.Validate(), ErrInvalidMaxForwardConns)
}

// A node without TLS dialled by one with it says so in its warning.
func TestPlainNodeNamesTLSClient(t *testing.T) {
	ca := newTestCA(t, "cluster")
	var out testlog.Buffer
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	m := newMux(ln, muxConfig{
		logger: hclog.New(&hclog.LoggerOptions{Output: &out, Level: hclog.Warn}),
	})
	defer func() { _ = m.Close() }()
	_, err = tls.Dial("tcp", ln.Addr().String(), ca.nodeTLS(t, "n0"))
	require.Error(t, err)
	require.Eventually(t, func() bool {
		return strings.Contains(out.String(), "this node has no Config.TLS")
	}, waitLong, time.Millisecond)
}

// A TLS cluster started, written to through every node, with a node
// restarted, and stopped warns about no rejected connection: its own nodes
// connecting, closing and reconnecting are never taken for intruders.
func TestTLSLoggerNoRejections(t *testing.T) {
	ca := newTestCA(t, "cluster")
	rec := &logRecorder{}
	c := startTLSCluster(t, 3, clusterTuning(), false, func(i int, cfg *Config) {
		cfg.TLS = ca.nodeTLS(t, fmt.Sprint("n", i))
		cfg.Logger = slog.New(rec)
	})
	id := timebox.NewAggregateID("order", "1")
	for i := range 6 {
		require.NoError(t, c.store(i%3).AppendEvents(id, int64(i), items(fmt.Sprint("e", i), 1)))
	}
	f := c.followers()[0]
	c.stop(f)
	c.start(f)
	waitReady(t, c.nodes[f])
	require.NoError(t, c.store(f).AppendEvents(id, 6, items("after", 1)))
	c.closeAll()
	for _, l := range rec.lines(slog.LevelInfo) {
		require.NotContains(t, l, "rejected a connection")
		require.NotContains(t, l, "tls:")
	}
}
