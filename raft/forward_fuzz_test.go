package raft

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzReadFrame feeds arbitrary bytes to the forwarding frame reader: it
// must never panic, never hold more than twice what it was sent (plus one
// chunk), and a frame it accepts must re-encode to the bytes it read.
func FuzzReadFrame(f *testing.F) {
	var ok bytes.Buffer
	_ = writeFrame(&ok, fwdApply, []byte("payload"))
	f.Add(ok.Bytes())
	f.Add([]byte{0, 0, 0, 1, fwdReadIndex})
	f.Add([]byte{0, 0, 0, 0, 1})
	huge := binary.BigEndian.AppendUint32(nil, maxFrame)
	f.Add(append(huge, fwdApply, 1, 2, 3))
	f.Add(binary.BigEndian.AppendUint32(nil, maxFrame+1))
	f.Fuzz(func(t *testing.T, data []byte) {
		tag, payload, err := readFrame(bytes.NewReader(data))
		if err != nil {
			return
		}
		if cap(payload) > 2*len(data)+frameChunk {
			t.Fatalf("holds %d bytes for %d sent", cap(payload), len(data))
		}
		var again bytes.Buffer
		if err := writeFrame(&again, tag, payload); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again.Bytes(), data[:again.Len()]) {
			t.Fatalf("frame does not round-trip")
		}
	})
}

// A frame larger than a chunk is read whole; one cut short is an error.
func TestReadFrameChunks(t *testing.T) {
	payload := bytes.Repeat([]byte("0123456789abcdef"), 70000)
	var buf bytes.Buffer
	require.NoError(t, writeFrame(&buf, fwdApply, payload))
	wire := buf.Bytes()
	tag, got, err := readFrame(bytes.NewReader(wire))
	require.NoError(t, err)
	require.Equal(t, fwdApply, tag)
	require.Equal(t, payload, got)
	require.LessOrEqual(t, cap(got), 2*len(payload))

	_, _, err = readFrame(bytes.NewReader(wire[:len(wire)-1]))
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	_, _, err = readFrame(bytes.NewReader(append(binary.BigEndian.AppendUint32(nil, maxFrame+1), fwdApply)))
	require.ErrorIs(t, err, errFrameTooLarge)
	_, _, err = readFrame(bytes.NewReader([]byte{0, 0, 0, 0, 1}))
	require.ErrorIs(t, err, errFrameTooLarge)
}
