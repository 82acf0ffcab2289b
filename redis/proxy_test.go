package redis

import (
	"bytes"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// proxy forwards TCP connections to a Redis server. Armed, it lets the
// next request holding "evalsha" through to the server but drops the
// server's reply and cuts that connection, as a network failure after
// sending would.
type proxy struct {
	ln      net.Listener
	target  string
	armed   atomic.Bool
	dropped atomic.Int32
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   []net.Conn
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	px := &proxy{ln: ln, target: target}
	px.wg.Add(1)
	go px.accept()
	t.Cleanup(px.close)
	return px
}

func (px *proxy) addr() string {
	return px.ln.Addr().String()
}

// dropNextReply arms the proxy for one EVALSHA.
func (px *proxy) dropNextReply() {
	px.armed.Store(true)
}

func (px *proxy) accept() {
	defer px.wg.Done()
	for {
		client, err := px.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", px.target)
		if err != nil {
			_ = client.Close()
			continue
		}
		px.track(client, server)
		var cut atomic.Bool
		px.wg.Add(2)
		go px.forward(client, server, &cut)
		go px.backward(server, client, &cut)
	}
}

func (px *proxy) track(conns ...net.Conn) {
	px.mu.Lock()
	defer px.mu.Unlock()
	px.conns = append(px.conns, conns...)
}

// forward copies requests to the server, marking the connection for a cut
// when an armed proxy sees an EVALSHA.
func (px *proxy) forward(client, server net.Conn, cut *atomic.Bool) {
	defer px.wg.Done()
	defer func() { _ = server.Close() }()
	buf := make([]byte, 64<<10)
	for {
		n, err := client.Read(buf)
		if n > 0 {
			if bytes.Contains(bytes.ToLower(buf[:n]), []byte("evalsha")) &&
				px.armed.CompareAndSwap(true, false) {
				cut.Store(true)
			}
			if _, werr := server.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// backward copies replies to the client, or drops one and cuts both
// connections when the connection is marked.
func (px *proxy) backward(server, client net.Conn, cut *atomic.Bool) {
	defer px.wg.Done()
	defer func() { _ = client.Close() }()
	buf := make([]byte, 64<<10)
	for {
		n, err := server.Read(buf)
		if n > 0 && cut.Load() {
			px.dropped.Add(1)
			_ = server.Close()
			return
		}
		if n > 0 {
			if _, werr := client.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				_ = server.Close()
			}
			return
		}
	}
}

func (px *proxy) close() {
	_ = px.ln.Close()
	px.mu.Lock()
	for _, c := range px.conns {
		_ = c.Close()
	}
	px.mu.Unlock()
	px.wg.Wait()
}
