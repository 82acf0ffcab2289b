package raft

import (
	"net"
	"os"
	"sync"
	"time"
)

// netSplit cuts one node off the network while it is cut: every
// connection the node dials or accepts (its tuning.wrapConn) stalls both
// ways, as TCP does while a partition drops its packets, until the split
// heals or the connection's deadline passes. Nothing is lost or
// reordered: bytes read while cut are held and delivered after the heal.
// A dial stalls on its protocol byte, so it times out like a dial to an
// unreachable peer.
type netSplit struct {
	mu     sync.Mutex
	cut    bool
	healCh chan struct{} // closed while not cut
	conns  map[*splitConn]struct{}
}

func newNetSplit() *netSplit {
	s := &netSplit{healCh: make(chan struct{})}
	close(s.healCh)
	return s
}

// Cut starts dropping the node's traffic.
func (s *netSplit) Cut() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.cut {
		s.cut = true
		s.healCh = make(chan struct{})
	}
}

// Drop closes every connection of the node, as a partition that lasts
// until TCP gives up would break them: what was in flight on them is lost
// (for instance AppendEntries a leader's pipeline sent before the cut).
func (s *netSplit) Drop() {
	s.mu.Lock()
	conns := make([]*splitConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

// Heal lets the node's traffic through again.
func (s *netSplit) Heal() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cut {
		s.cut = false
		close(s.healCh)
	}
}

func (s *netSplit) healed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.healCh
}

// wrap is the node's tuning.wrapConn.
func (s *netSplit) wrap(c net.Conn) net.Conn {
	sc := &splitConn{
		Conn: c, s: s, kick: make(chan struct{}), done: make(chan struct{}),
	}
	s.mu.Lock()
	if s.conns == nil {
		s.conns = map[*splitConn]struct{}{}
	}
	s.conns[sc] = struct{}{}
	s.mu.Unlock()
	return sc
}

// splitConn is one connection of a node behind a netSplit.
type splitConn struct {
	net.Conn
	s *netSplit

	mu       sync.Mutex
	rdl, wdl time.Time
	kick     chan struct{} // closed and replaced when a deadline changes

	done      chan struct{}
	closeOnce sync.Once

	held []byte // read while cut; Read is never called concurrently
}

// pass waits until the split is healed, the read (or write) deadline
// passes, or the connection is closed.
func (c *splitConn) pass(write bool) error {
	for {
		healed := c.s.healed()
		c.mu.Lock()
		dl, kick := c.rdl, c.kick
		if write {
			dl = c.wdl
		}
		c.mu.Unlock()
		select {
		case <-healed:
			return nil
		default:
		}
		if err := c.waitOnce(healed, kick, dl); err != nil {
			return err
		}
	}
}

// waitOnce waits for one of pass's conditions, or for a deadline change
// (kick), after which pass looks again.
func (c *splitConn) waitOnce(healed, kick <-chan struct{}, dl time.Time) error {
	var expire <-chan time.Time
	if !dl.IsZero() {
		d := time.Until(dl)
		if d <= 0 {
			return os.ErrDeadlineExceeded
		}
		t := time.NewTimer(d)
		defer t.Stop()
		expire = t.C
	}
	select {
	case <-healed:
		return nil
	case <-expire:
		return os.ErrDeadlineExceeded
	case <-c.done:
		return net.ErrClosed
	case <-kick:
		return nil
	}
}

func (c *splitConn) Read(b []byte) (int, error) {
	if err := c.pass(false); err != nil {
		return 0, err
	}
	if len(c.held) > 0 {
		n := copy(b, c.held)
		c.held = c.held[n:]
		return n, nil
	}
	n, err := c.Conn.Read(b)
	if n == 0 {
		return n, err
	}
	// The bytes arrived, but not while the node is cut off.
	if perr := c.pass(false); perr != nil {
		c.held = append([]byte(nil), b[:n]...)
		return 0, perr
	}
	return n, err
}

func (c *splitConn) Write(b []byte) (int, error) {
	if err := c.pass(true); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

func (c *splitConn) setDeadlines(read, write bool, t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if read {
		c.rdl = t
	}
	if write {
		c.wdl = t
	}
	close(c.kick)
	c.kick = make(chan struct{})
}

func (c *splitConn) SetDeadline(t time.Time) error {
	c.setDeadlines(true, true, t)
	return c.Conn.SetDeadline(t)
}

func (c *splitConn) SetReadDeadline(t time.Time) error {
	c.setDeadlines(true, false, t)
	return c.Conn.SetReadDeadline(t)
}

func (c *splitConn) SetWriteDeadline(t time.Time) error {
	c.setDeadlines(false, true, t)
	return c.Conn.SetWriteDeadline(t)
}

func (c *splitConn) Close() error {
	c.closeOnce.Do(func() {
		close(c.done)
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
	})
	return c.Conn.Close()
}
