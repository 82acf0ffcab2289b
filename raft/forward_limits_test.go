package raft

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
)

// stallFrames opens n forwarding connections to p, each announcing a frame
// of the largest size and then sending nothing more.
func stallFrames(t *testing.T, p *Persistence, n int) []net.Conn {
	hdr := make([]byte, 6)
	hdr[0] = protoForward
	binary.BigEndian.PutUint32(hdr[1:], maxFrame)
	hdr[5] = fwdApply
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := net.Dial("tcp", p.mux.ln.Addr().String())
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		_, err = c.Write(hdr)
		require.NoError(t, err)
		conns[i] = c
	}
	return conns
}

// forwardOne sends one append for id through a fresh forwarding
// connection, as a follower would, and returns the reply's code.
func forwardOne(t *testing.T, p *Persistence, id timebox.AggregateID, seq int64) byte {
	c, err := net.Dial("tcp", p.mux.ln.Addr().String())
	require.NoError(t, err)
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(waitLong))
	_, err = c.Write([]byte{protoForward})
	require.NoError(t, err)
	req := timebox.AppendRequest{ID: id, ExpectedSequence: seq, Events: items("f", 1)}
	require.NoError(t, writeFrame(c, fwdApply, encodeAppend(req)))
	code, _, err := readFrame(c)
	require.NoError(t, err)
	return code
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// 64 connections that announce the largest frame and stall cost the
// leader a few KiB each, not the 256 MiB they announce, and it goes on
// serving.
func TestForwardStalledFramesBounded(t *testing.T) {
	p := newSingle(t, Config{})
	fwd := p.mux.cfg.fwd
	before := heapInUse()
	stallFrames(t, p, 64)
	require.Eventually(t, func() bool { return len(fwd.slots) == 64 },
		waitLong, time.Millisecond, "every stalled request holds a slot")
	grown := int64(heapInUse()) - int64(before)
	t.Logf("heap grew by %d KiB for 64 stalled maximal frames", grown>>10)
	require.Less(t, grown, int64(4<<20))

	id := timebox.NewAggregateID("busy")
	require.Equal(t, codeOK, forwardOne(t, p, id, 0), "a forwarded write goes through")
	st := newStore(t, p, timebox.Config{})
	require.NoError(t, st.AppendEvents(id, 1, items("l", 1)), "a local write goes through")
}

// With MaxForwardConns slots, no more requests than that are read at
// once; a stalled one is dropped after the stall timeout, so the others,
// and a good one, get their turn.
func TestForwardSlotsLimit(t *testing.T) {
	tune := singleTuning()
	tune.handshakeTimeout = 100 * time.Millisecond
	p, err := NewPersistence(Config{
		LocalID: "solo", Address: "127.0.0.1:0", DataDir: t.TempDir(),
		MaxForwardConns: 4, tuning: tune,
	})
	require.NoError(t, err)
	defer func() { _ = p.Close() }()
	waitReady(t, p)
	fwd := p.mux.cfg.fwd
	require.Equal(t, 4, cap(fwd.slots))

	conns := stallFrames(t, p, 16)
	require.Eventually(t, func() bool { return len(fwd.slots) == 4 },
		waitLong, time.Millisecond)
	id := timebox.NewAggregateID("limited")
	require.Equal(t, codeOK, forwardOne(t, p, id, 0), "a good request gets a slot in time")
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(waitLong))
		_, err := io.ReadAll(c)
		require.False(t, errors.Is(err, os.ErrDeadlineExceeded), "the node dropped the stalled request")
	}
	require.Eventually(t, func() bool { return len(fwd.slots) == 0 },
		waitLong, time.Millisecond)
}
