package raft

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"

	hraft "github.com/hashicorp/raft"
)

// Every connection to Address starts with one byte naming its protocol, so
// Raft traffic and forwarded writes share one listener.
const (
	protoRaft    byte = 'R'
	protoForward byte = 'F'
)

// handshakeTimeout bounds how long an accepted connection may take to send
// its protocol byte.
const handshakeTimeout = 10 * time.Second

var errMuxClosed = errors.New("raft: listener closed")

// mux accepts connections on one listener and routes them by their first
// byte: Raft connections to the stream layer, forwarding connections to
// serveForward. It tracks every connection so Close can end them all.
type mux struct {
	ln        net.Listener
	raftConns chan net.Conn
	serveFwd  func(net.Conn)
	wrap      func(net.Conn) net.Conn
	done      chan struct{}
	wg        sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	shut  bool
}

// newMux routes ln's connections. wrap, when not nil, wraps every
// connection dialed or accepted before its first byte; tests use it to
// cut a node off the network.
func newMux(ln net.Listener, serveFwd func(net.Conn), wrap func(net.Conn) net.Conn) *mux {
	if wrap == nil {
		wrap = func(c net.Conn) net.Conn { return c }
	}
	m := &mux{
		ln:        ln,
		raftConns: make(chan net.Conn),
		serveFwd:  serveFwd,
		wrap:      wrap,
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
		c = m.wrap(c)
		if !m.track(c) {
			_ = c.Close()
			return
		}
		m.wg.Add(1)
		go m.route(c)
	}
}

func (m *mux) route(c net.Conn) {
	defer m.wg.Done()
	var b [1]byte
	_ = c.SetReadDeadline(time.Now().Add(handshakeTimeout))
	if _, err := io.ReadFull(c, b[:]); err != nil {
		m.drop(c)
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	switch b[0] {
	case protoRaft:
		select {
		case m.raftConns <- &trackedConn{Conn: c, m: m}:
		case <-m.done:
			m.drop(c)
		}
	case protoForward:
		m.serveFwd(c)
		m.drop(c)
	default:
		m.drop(c)
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
// one.
func (m *mux) dial(addr string, proto byte, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	c = m.wrap(c)
	// The protocol byte is sent within the dial timeout too, so a dial to
	// a peer that cannot be reached fails instead of hanging.
	if timeout > 0 {
		_ = c.SetWriteDeadline(time.Now().Add(timeout))
	}
	if _, err := c.Write([]byte{proto}); err != nil {
		_ = c.Close()
		return nil, err
	}
	_ = c.SetWriteDeadline(time.Time{})
	if !m.track(c) {
		_ = c.Close()
		return nil, errMuxClosed
	}
	return &trackedConn{Conn: c, m: m}, nil
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

// trackedConn untracks itself when closed.
type trackedConn struct {
	net.Conn
	m    *mux
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.m.mu.Lock()
		delete(c.m.conns, c.Conn)
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
