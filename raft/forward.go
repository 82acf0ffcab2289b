package raft

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/codec"
)

// Forwarding protocol: after the protoForward byte, a follower sends
// request frames and the leader answers each with one response frame, in
// order. A frame is a 4-byte BE length, a tag byte and the payload.
const (
	fwdApply     byte = 1 // payload: an encoded command
	fwdReadIndex byte = 2 // payload: empty

	codeOK        byte = 0 // payload: log index (8 bytes BE)
	codeConflict  byte = 1 // payload: an encoded conflict
	codeNotLeader byte = 2 // nothing was done; ask the new leader
	codeUnknown   byte = 3 // payload: message; the write may have happened
	codeError     byte = 4 // payload: message; nothing was written

	// maxFrame is the largest frame accepted, so the largest command
	// that can be forwarded.
	maxFrame = 256 << 20
	// frameChunk is the most a frame read allocates before payload
	// arrives; it then grows by doubling as bytes come in, so a peer
	// that announces a large frame costs at most twice what it sent.
	frameChunk = 4 << 10
	maxIdle    = 64
)

var errFrameTooLarge = errors.New("raft: forwarded frame too large")

func writeFrame(w io.Writer, tag byte, payload []byte) error {
	buf := make([]byte, 5, 5+len(payload))
	binary.BigEndian.PutUint32(buf, uint32(len(payload)+1))
	buf[4] = tag
	_, err := w.Write(append(buf, payload...))
	return err
}

// readFrame reads one frame. It returns errFrameTooLarge for an announced
// length of zero or beyond maxFrame, io.ErrUnexpectedEOF for a frame cut
// short, or r's error.
func readFrame(r io.Reader) (byte, []byte, error) {
	tag, n, err := readHeader(r)
	if err != nil {
		return 0, nil, err
	}
	payload, err := readPayload(r, n)
	if err != nil {
		return 0, nil, err
	}
	return tag, payload, nil
}

// readHeader reads a frame's length and tag, and returns the tag and the
// payload's length.
func readHeader(r io.Reader) (byte, int, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, 0, err
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	if n == 0 || n > maxFrame {
		return 0, 0, errFrameTooLarge
	}
	return hdr[4], int(n - 1), nil
}

// readPayload reads n bytes, allocating as they arrive rather than all n
// up front.
func readPayload(r io.Reader, n int) ([]byte, error) {
	buf := make([]byte, 0, min(n, frameChunk))
	for len(buf) < n {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(n-len(buf), len(buf)))
		}
		end := min(cap(buf), n)
		if _, err := io.ReadFull(r, buf[len(buf):end]); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		buf = buf[:end]
	}
	return buf, nil
}

// fwdServer serves forwarding connections on the leader with bounded
// resources: an idle connection waits for a request header with nothing
// allocated; a request then takes one of the slots (MaxForwardConns) for
// as long as its payload is read and it is answered, and each read or
// write of it must make progress within stall.
type fwdServer struct {
	handle func(tag byte, payload []byte) (byte, []byte)
	slots  chan struct{}
	stall  time.Duration
	done   <-chan struct{}
}

func (p *Persistence) newFwdServer() *fwdServer {
	stall := p.tune.handshakeTimeout
	if stall <= 0 {
		stall = defaultTuning().handshakeTimeout
	}
	slots := p.cfg.MaxForwardConns
	if slots == 0 {
		slots = DefaultMaxForwardConns
	}
	return &fwdServer{
		handle: p.handleForward,
		slots:  make(chan struct{}, slots),
		stall:  stall,
		done:   p.done,
	}
}

// serve answers one follower's requests, in order, until it hangs up,
// stalls or sends a bad frame.
func (s *fwdServer) serve(c net.Conn) {
	for {
		_ = c.SetReadDeadline(time.Time{})
		tag, n, err := readHeader(c)
		if err != nil {
			return
		}
		select {
		case s.slots <- struct{}{}:
		case <-s.done:
			return
		}
		ok := s.serveOne(c, tag, n)
		<-s.slots
		if !ok {
			return
		}
	}
}

func (s *fwdServer) serveOne(c net.Conn, tag byte, n int) bool {
	payload, err := readPayload(stallReader{c: c, stall: s.stall}, n)
	if err != nil {
		return false
	}
	code, body := s.handle(tag, payload)
	_ = c.SetWriteDeadline(time.Now().Add(s.stall))
	return writeFrame(c, code, body) == nil
}

// stallReader fails a Read that receives nothing within stall.
type stallReader struct {
	c     net.Conn
	stall time.Duration
}

func (r stallReader) Read(b []byte) (int, error) {
	_ = r.c.SetReadDeadline(time.Now().Add(r.stall))
	return r.c.Read(b)
}

func (p *Persistence) handleForward(tag byte, payload []byte) (byte, []byte) {
	select {
	case <-p.started:
	default:
		// The node is still starting (it listens before Raft runs), so
		// it leads nothing yet; the caller asks again.
		return codeNotLeader, nil
	}
	switch tag {
	case fwdApply:
		idx, resp, err := p.applyLocal(payload)
		if err != nil {
			return errorCode(err)
		}
		p.nudge(idx)
		return responseCode(idx, resp)
	case fwdReadIndex:
		idx, err := p.readIndexLocal()
		if err != nil {
			return errorCode(err)
		}
		p.nudge(idx)
		return codeOK, binary.BigEndian.AppendUint64(nil, idx)
	default:
		return codeError, []byte(fmt.Sprintf("unknown request %d", tag))
	}
}

func errorCode(err error) (byte, []byte) {
	switch {
	case errors.Is(err, timebox.ErrUnknownOutcome):
		return codeUnknown, []byte(err.Error())
	case errors.Is(err, errNotLeader), errors.Is(err, timebox.ErrClosed):
		// A closing leader did nothing; its successor will.
		return codeNotLeader, nil
	default:
		return codeError, []byte(err.Error())
	}
}

func responseCode(idx uint64, resp any) (byte, []byte) {
	switch r := resp.(type) {
	case nil:
		return codeOK, binary.BigEndian.AppendUint64(nil, idx)
	case *timebox.VersionConflictError:
		return codeConflict, encodeConflict(r)
	case error:
		return codeError, []byte(r.Error())
	default:
		return codeError, []byte(fmt.Sprintf("unexpected response %T", resp))
	}
}

func encodeConflict(c *timebox.VersionConflictError) []byte {
	buf := binary.AppendUvarint(nil, uint64(c.ExpectedSequence))
	buf = binary.AppendUvarint(buf, uint64(c.ActualSequence))
	buf = binary.AppendUvarint(buf, uint64(len(c.NewEvents)))
	for _, ev := range c.NewEvents {
		buf = codec.AppendBytes(buf, codec.EncodeEvent(ev))
	}
	return buf
}

func decodeConflict(b []byte, id timebox.AggregateID) (*timebox.VersionConflictError, error) {
	r := codec.NewReader(b)
	c := &timebox.VersionConflictError{ExpectedSequence: r.Seq(), ActualSequence: r.Seq()}
	n := r.Uvarint()
	if n > uint64(r.Len()) {
		return nil, errMalformedCommand
	}
	recs := make([][]byte, n)
	for i := range recs {
		recs[i] = r.Bytes()
	}
	var err error
	if c.NewEvents, err = codec.DecodeEvents(id, recs); err != nil {
		return nil, err
	}
	if r.Bad() {
		return nil, errMalformedCommand
	}
	return c, nil
}

// forwarder keeps idle forwarding connections per leader address.
type forwarder struct {
	m       *mux
	timeout time.Duration
	mu      sync.Mutex
	idle    map[string][]net.Conn
	closed  bool
}

func newForwarder(m *mux, dialTimeout time.Duration) *forwarder {
	return &forwarder{m: m, timeout: dialTimeout, idle: map[string][]net.Conn{}}
}

// call sends one request to addr and returns the response. sent reports
// whether the request may have reached the leader, so a failure with sent
// false is safe to retry.
func (f *forwarder) call(
	ctx context.Context, addr string, tag byte, payload []byte,
) (code byte, body []byte, sent bool, err error) {
	c, err := f.get(addr)
	if err != nil {
		return 0, nil, false, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() {
		_ = c.SetDeadline(time.Unix(1, 0))
	})
	defer stop()
	if err := writeFrame(c, tag, payload); err != nil {
		_ = c.Close()
		return 0, nil, true, err
	}
	code, body, err = readFrame(c)
	if err != nil {
		_ = c.Close()
		return 0, nil, true, err
	}
	if !stop() {
		_ = c.Close()
		return code, body, true, nil
	}
	_ = c.SetDeadline(time.Time{})
	f.put(addr, c)
	return code, body, true, nil
}

// get returns a live idle connection to addr or dials one.
func (f *forwarder) get(addr string) (net.Conn, error) {
	for {
		f.mu.Lock()
		if f.closed {
			f.mu.Unlock()
			return nil, errMuxClosed
		}
		conns := f.idle[addr]
		if len(conns) == 0 {
			f.mu.Unlock()
			return f.m.dial(addr, protoForward, f.timeout)
		}
		c := conns[len(conns)-1]
		f.idle[addr] = conns[:len(conns)-1]
		f.mu.Unlock()
		if alive(c) {
			return c, nil
		}
		_ = c.Close()
	}
}

// alive reports whether an idle connection is still open: the leader
// never sends unasked, so a read finds either nothing (open) or EOF.
func alive(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now())
	var b [1]byte
	_, err := c.Read(b[:])
	_ = c.SetReadDeadline(time.Time{})
	return errors.Is(err, os.ErrDeadlineExceeded)
}

func (f *forwarder) put(addr string, c net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || len(f.idle[addr]) >= maxIdle {
		_ = c.Close()
		return
	}
	f.idle[addr] = append(f.idle[addr], c)
}

func (f *forwarder) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for _, conns := range f.idle {
		for _, c := range conns {
			_ = c.Close()
		}
	}
	f.idle = nil
}

// muxConfig is how this node's mux serves Address.
func (p *Persistence) newMuxConfig(logger hclog.Logger) muxConfig {
	cfg := muxConfig{
		fwd:       p.newFwdServer(),
		wrap:      p.tune.wrapConn,
		handshake: p.tune.handshakeTimeout,
		logger:    logger,
	}
	if p.cfg.TLS != nil {
		cfg.tls = newPeerTLS(p.cfg.TLS)
	}
	return cfg
}
