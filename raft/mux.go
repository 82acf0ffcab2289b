package raft

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	hraft "github.com/hashicorp/raft"
)

// Every connection to Address starts with one byte naming its protocol
// (with TLS, the first byte inside it), so Raft traffic and forwarded writes
// share one listener.
const (
	protoRaft    byte = 'R'
	protoForward byte = 'F'

	// tlsHandshakeRecord starts a TLS client's first message: a node
	// with TLS dialling one without.
	tlsHandshakeRecord byte = 0x16
)

var errMuxClosed = errors.New("raft: listener closed")

// muxConfig is what a mux needs besides its listener.
type muxConfig struct {
	// fwd serves forwarding connections; without it they are dropped.
	fwd *fwdServer
	// wrap, when not nil, wraps every connection dialed or accepted,
	// under TLS; tests use it to cut a node off the network.
	wrap func(net.Conn) net.Conn
	// tls, when not nil, runs mutual TLS on every connection.
	tls *peerTLS
	// handshake bounds an accepted connection's TLS handshake and
	// protocol byte, and a dial's when the dialer gives no timeout.
	handshake time.Duration
	// logger gets a warning for a rejected connection, once per remote
	// host per rejectEvery.
	logger hclog.Logger
}

// mux accepts connections on one listener and routes them by their first
// byte: Raft connections to the stream layer, forwarding connections to
// the fwdServer. With TLS, the handshake comes first and the protocol byte is
// read inside it, so nothing from an unauthenticated peer is acted on. It
// tracks every connection so Close can end them all.
type mux struct {
	ln        net.Listener
	cfg       muxConfig
	raftConns chan net.Conn
	rejects   rejectLog
	done      chan struct{}
	wg        sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	shut  bool
}

// newMux routes ln's connections as cfg says.
func newMux(ln net.Listener, cfg muxConfig) *mux {
	if cfg.wrap == nil {
		cfg.wrap = func(c net.Conn) net.Conn { return c }
	}
	if cfg.handshake <= 0 {
		cfg.handshake = defaultTuning().handshakeTimeout
	}
	if cfg.logger == nil {
		cfg.logger = hclog.NewNullLogger()
	}
	m := &mux{
		ln:        ln,
		cfg:       cfg,
		raftConns: make(chan net.Conn),
		done:      make(chan struct{}),
		conns:     map[net.Conn]struct{}{},
	}
	m.wg.Add(1)
	go m.acceptLoop()
	return m
}

func (m *mux) acceptLoop() {
	defer m.wg.Done()
	for {
		c, err := m.ln.Accept()
		if err != nil {
			return
		}
		c = m.cfg.wrap(c)
		if !m.track(c) {
			_ = c.Close()
			return
		}
		m.wg.Add(1)
		go m.route(c)
	}
}

// route runs raw's handshake and hands the connection to its protocol.
func (m *mux) route(raw net.Conn) {
	defer m.wg.Done()
	_ = raw.SetDeadline(time.Now().Add(m.cfg.handshake))
	c, proto, err := m.handshakeIn(raw)
	if err != nil {
		m.reject(raw, err)
		m.drop(raw)
		return
	}
	_ = raw.SetDeadline(time.Time{})
	switch proto {
	case protoRaft:
		select {
		case m.raftConns <- &trackedConn{Conn: c, key: raw, m: m}:
		case <-m.done:
			m.drop(raw)
		}
	case protoForward:
		if m.cfg.fwd != nil {
			m.cfg.fwd.serve(c)
		}
		m.drop(raw)
	case tlsHandshakeRecord:
		m.reject(raw, errors.New("a TLS client, but this node has no Config.TLS"))
		m.drop(raw)
	default:
		m.reject(raw, fmt.Errorf("unknown protocol byte %#x", proto))
		m.drop(raw)
	}
}

// handshakeIn runs the TLS handshake, when configured, and reads the
// protocol byte.
func (m *mux) handshakeIn(raw net.Conn) (net.Conn, byte, error) {
	c := raw
	if m.cfg.tls != nil {
		tc := tls.Server(raw, m.cfg.tls.server)
		if err := tc.Handshake(); err != nil {
			return nil, 0, err
		}
		c = tc
	}
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return nil, 0, err
	}
	return c, b[0], nil
}

// reject logs a connection refused before its protocol began at warn,
// once per remote host per rejectEvery; one that hung up before sending
// anything at debug; nothing while the mux closes.
func (m *mux) reject(c net.Conn, err error) {
	select {
	case <-m.done:
		return
	default:
	}
	if errors.Is(err, io.EOF) {
		// Hung up before sending anything to reject: a peer closing
		// mid-dial, or a port probe.
		m.cfg.logger.Debug("connection closed before its protocol began",
			"remote", c.RemoteAddr().String(), "error", err)
		return
	}
	host := c.RemoteAddr().String()
	if h, _, e := net.SplitHostPort(host); e == nil {
		host = h
	}
	if m.rejects.first(host, time.Now()) {
		m.cfg.logger.Warn("rejected a connection", "remote", c.RemoteAddr().String(),
			"tls", m.cfg.tls != nil, "error", err)
	}
}

// track registers c, or reports false once the mux is closed.
func (m *mux) track(c net.Conn) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.shut {
		return false
	}
	m.conns[c] = struct{}{}
	return true
}

func (m *mux) drop(c net.Conn) {
	m.mu.Lock()
	delete(m.conns, c)
	m.mu.Unlock()
	_ = c.Close()
}

// dial opens a connection to addr speaking proto, tracked like an accepted
// one. The TLS handshake and the protocol byte are sent within timeout
// (the mux's handshake timeout when it is not positive), so a dial to a
// peer that cannot be reached fails instead of hanging; with TLS, a peer
// whose certificate does not verify fails it.
func (m *mux) dial(addr string, proto byte, timeout time.Duration) (net.Conn, error) {
	if timeout <= 0 {
		timeout = m.cfg.handshake
	}
	deadline := time.Now().Add(timeout)
	raw, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	raw = m.cfg.wrap(raw)
	if !m.track(raw) {
		_ = raw.Close()
		return nil, errMuxClosed
	}
	_ = raw.SetDeadline(deadline)
	c := raw
	if m.cfg.tls != nil {
		tc := tls.Client(raw, m.cfg.tls.clientFor(addr))
		if err := tc.Handshake(); err != nil {
			m.drop(raw)
			return nil, err
		}
		c = tc
	}
	if _, err := c.Write([]byte{proto}); err != nil {
		m.drop(raw)
		return nil, err
	}
	_ = raw.SetDeadline(time.Time{})
	return &trackedConn{Conn: c, key: raw, m: m}, nil
}

// Close stops accepting, closes every tracked connection and waits for the
// routing goroutines.
func (m *mux) Close() error {
	m.mu.Lock()
	if m.shut {
		m.mu.Unlock()
		return nil
	}
	m.shut = true
	close(m.done)
	conns := m.conns
	m.conns = map[net.Conn]struct{}{}
	m.mu.Unlock()
	err := m.ln.Close()
	for c := range conns {
		_ = c.Close()
	}
	m.wg.Wait()
	return err
}

// trackedConn untracks itself when closed. Conn is what the protocol
// speaks over (a TLS connection over key, or key itself); key is the
// tracked connection.
type trackedConn struct {
	net.Conn
	key  net.Conn
	m    *mux
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.m.mu.Lock()
		delete(c.m.conns, c.key)
		c.m.mu.Unlock()
	})
	return c.Conn.Close()
}

// streamLayer is the Raft side of the mux.
type streamLayer struct {
	m      *mux
	addr   advertiseAddr
	closed chan struct{}
	once   sync.Once
}

var _ hraft.StreamLayer = (*streamLayer)(nil)

func newStreamLayer(m *mux, addr string) *streamLayer {
	return &streamLayer{m: m, addr: advertiseAddr(addr), closed: make(chan struct{})}
}

// advertiseAddr is the address other nodes dial, which Raft reports as
// this node's.
type advertiseAddr string

func (a advertiseAddr) Network() string { return "tcp" }
func (a advertiseAddr) String() string  { return string(a) }

// Accept returns the next Raft connection.
func (s *streamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-s.m.raftConns:
		return c, nil
	case <-s.closed:
		return nil, errMuxClosed
	case <-s.m.done:
		return nil, errMuxClosed
	}
}

// Close stops Accept; the mux owns the listener.
func (s *streamLayer) Close() error {
	s.once.Do(func() { close(s.closed) })
	return nil
}

// Addr is the address this node advertises.
func (s *streamLayer) Addr() net.Addr {
	return s.addr
}

// Dial opens a Raft connection to address.
func (s *streamLayer) Dial(address hraft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return s.m.dial(string(address), protoRaft, timeout)
}
