// Package faultproxy is a TCP proxy for tests that sits between a client
// and a real server and injects faults into the real connections: it cuts
// them, swallows a reply after forwarding its request (so the client cannot
// know whether the request took effect), and delays traffic.
package faultproxy

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Proxy forwards every connection accepted on Addr to the target. It is
// safe for concurrent use; Close stops it and waits for every goroutine it
// started.
type Proxy struct {
	ln     net.Listener
	target string

	delay     atomic.Int64
	dropNext  atomic.Bool
	dropAll   atomic.Bool
	accepted  atomic.Int64
	dropped   atomic.Int64
	closeOnce sync.Once

	mu     sync.Mutex
	links  map[*link]struct{}
	closed bool
	wg     sync.WaitGroup
}

// link is one proxied connection: client and server sides.
type link struct {
	client, server net.Conn
	// drop is set once a request on this link was forwarded while a drop
	// was armed: the server's next reply is swallowed and the link cut.
	drop      atomic.Bool
	closeOnce sync.Once
	done      chan struct{}
}

// New starts a proxy to target on 127.0.0.1 at a free port, and closes it
// when t ends. It fails t if it cannot listen.
func New(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("faultproxy: listen: %v", err)
	}
	p := &Proxy{ln: ln, target: target, links: map[*link]struct{}{}}
	p.wg.Go(p.accept)
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// Addr returns the host:port clients should dial instead of the target.
func (p *Proxy) Addr() string {
	return p.ln.Addr().String()
}

// CutAll closes every current connection, both sides. New connections are
// still accepted.
func (p *Proxy) CutAll() {
	p.mu.Lock()
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	p.mu.Unlock()
	for _, l := range links {
		l.close()
	}
}

// DropNextReply arms a one-shot drop: the next request any client sends is
// forwarded to the server, but the server's reply to it is swallowed and
// that connection is cut. The request may well have taken effect; the
// client only sees a broken connection.
func (p *Proxy) DropNextReply() {
	p.dropNext.Store(true)
}

// DropReplies turns on or off dropping every reply as DropNextReply does
// once: each request is forwarded, then its connection is cut before the
// reply reaches the client.
func (p *Proxy) DropReplies(on bool) {
	p.dropAll.Store(on)
}

// SetDelay makes the proxy hold every chunk of traffic, in both directions,
// for d before forwarding it; 0 turns the delay off.
func (p *Proxy) SetDelay(d time.Duration) {
	p.delay.Store(int64(d))
}

// Accepted returns the number of client connections accepted so far.
func (p *Proxy) Accepted() int64 { return p.accepted.Load() }

// Dropped returns the number of replies swallowed so far.
func (p *Proxy) Dropped() int64 { return p.dropped.Load() }

// Close stops accepting, cuts every connection and waits for the proxy's
// goroutines to finish. A second Close returns nil.
func (p *Proxy) Close() error {
	var err error
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
		err = p.ln.Close()
		p.CutAll()
		p.wg.Wait()
	})
	return err
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.accepted.Add(1)
		s, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.start(&link{client: c, server: s, done: make(chan struct{})})
	}
}

// start registers l and pumps its traffic both ways, unless the proxy is
// closing.
func (p *Proxy) start(l *link) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		l.close()
		return
	}
	p.links[l] = struct{}{}
	var pumps sync.WaitGroup
	pumps.Go(func() { p.requests(l) })
	pumps.Go(func() { p.replies(l) })
	p.wg.Go(func() {
		pumps.Wait()
		p.mu.Lock()
		delete(p.links, l)
		p.mu.Unlock()
	})
}

// requests forwards client bytes to the server, arming l's drop when a
// drop is pending.
func (p *Proxy) requests(l *link) {
	defer l.close()
	p.pump(l, l.client, l.server, func([]byte) bool {
		if p.dropAll.Load() || p.dropNext.CompareAndSwap(true, false) {
			l.drop.Store(true)
		}
		return true
	})
}

// replies forwards server bytes to the client, unless l's drop is armed:
// then the reply is swallowed and the link cut.
func (p *Proxy) replies(l *link) {
	defer l.close()
	p.pump(l, l.server, l.client, func([]byte) bool {
		if l.drop.Load() {
			p.dropped.Add(1)
			return false
		}
		return true
	})
}

// pump copies from src to dst, chunk by chunk, until either side fails or
// forward returns false. Each chunk waits out the delay first. When either
// side closes, the whole link is closed: no half-closed connections.
func (p *Proxy) pump(l *link, src, dst net.Conn, forward func([]byte) bool) {
	buf := make([]byte, 32*1024)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !forward(buf[:n]) || !l.wait(time.Duration(p.delay.Load())) {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// wait sleeps d, and reports false if l is cut meanwhile.
func (l *link) wait(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-l.done:
		return false
	}
}

func (l *link) close() {
	l.closeOnce.Do(func() {
		close(l.done)
		_ = l.client.Close()
		_ = l.server.Close()
	})
}
