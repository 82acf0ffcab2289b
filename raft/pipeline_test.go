package raft

import (
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
)

// TestClosePipelinesUnblocksStalledSend builds hashicorp/raft's pipeline
// deadlock by hand: nobody takes the pipeline's replies (its consumer is
// gone, as after pipelineDecode returned), so its queues fill and
// AppendEntries blocks for good. closePipelines must end that wait with
// ErrPipelineShutdown.
func TestClosePipelinesUnblocksStalledSend(t *testing.T) {
	a, err := hraft.NewTCPTransport("127.0.0.1:0", nil, 2, 10*time.Second, nil)
	require.NoError(t, err)
	b, err := hraft.NewTCPTransport("127.0.0.1:0", nil, 2, 10*time.Second, nil)
	require.NoError(t, err)
	done := make(chan struct{})
	defer func() { _ = a.Close(); _ = b.Close() }()
	defer close(done)
	go func() { // the follower answers every request
		for {
			select {
			case rpc := <-b.Consumer():
				rpc.Respond(&hraft.AppendEntriesResponse{Term: 1, Success: true}, nil)
			case <-done:
				return
			}
		}
	}()

	tr := newTrackingTransport(a)
	p, err := tr.AppendEntriesPipeline("b", b.LocalAddr())
	require.NoError(t, err)
	const most = 10_000 // far beyond the pipeline's queues
	sent := make(chan int, most)
	stalled := make(chan error, 1)
	go func() {
		for i := range most {
			_, err := p.AppendEntries(&hraft.AppendEntriesRequest{Term: 1},
				&hraft.AppendEntriesResponse{})
			if err != nil {
				stalled <- err
				return
			}
			sent <- i
		}
		stalled <- nil
	}()
	// Wait until the sends stop with the queues full (a few requests:
	// the transport's MaxRPCsInFlight bounds them).
	last, quiet := -1, time.Now()
	deadline := time.Now().Add(30 * time.Second)
	for last < 0 || time.Since(quiet) < 500*time.Millisecond {
		require.True(t, time.Now().Before(deadline), "sends did not stop (%d sent)", last+1)
		select {
		case i := <-sent:
			last, quiet = i, time.Now()
		case err := <-stalled:
			t.Fatalf("AppendEntries returned after %d sends (%v) instead of blocking", last+1, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	require.Less(t, last, most-1)

	tr.closePipelines()
	select {
	case err := <-stalled:
		// ErrPipelineShutdown from the stalled hand-off (a send caught
		// writing would fail on the closed connection instead).
		require.Error(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("AppendEntries still blocked after closePipelines")
	}
	require.Empty(t, tr.pipelines)
}
