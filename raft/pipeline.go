package raft

import (
	"sync"

	hraft "github.com/hashicorp/raft"
)

// transport is Raft's network transport with the replication pipelines it
// opened tracked, so that shutdown can close them.
//
// hashicorp/raft v1.7.3 can deadlock a leader's replication to a follower:
// when pipelineDecode returns (a reply carrying a newer term: the leader
// was deposed, as after a partition) while pipelineSend waits to hand a
// request to the pipeline's full in-progress queue, whose decoder in turn
// waits to hand a reply to the consumer that is gone, nothing closes the
// pipeline, and Raft's Shutdown waits for that goroutine forever (seen
// once in the partition chaos scenario: Close hung for minutes). Closing
// the pipeline ends both waits.
type transport struct {
	*hraft.NetworkTransport
	mu        sync.Mutex
	pipelines map[*trackedPipeline]struct{}
}

// trackedPipeline is a pipeline its transport can close.
type trackedPipeline struct {
	hraft.AppendPipeline
	t *transport
}

func newTrackingTransport(t *hraft.NetworkTransport) *transport {
	return &transport{NetworkTransport: t, pipelines: map[*trackedPipeline]struct{}{}}
}

// AppendEntriesPipeline opens a pipeline to target and tracks it until it
// is closed.
func (t *transport) AppendEntriesPipeline(
	id hraft.ServerID, target hraft.ServerAddress,
) (hraft.AppendPipeline, error) {
	p, err := t.NetworkTransport.AppendEntriesPipeline(id, target)
	if err != nil {
		return nil, err
	}
	tp := &trackedPipeline{AppendPipeline: p, t: t}
	t.mu.Lock()
	t.pipelines[tp] = struct{}{}
	t.mu.Unlock()
	return tp, nil
}

// Close closes the pipeline (a second Close does nothing) and stops
// tracking it.
func (p *trackedPipeline) Close() error {
	p.t.mu.Lock()
	delete(p.t.pipelines, p)
	p.t.mu.Unlock()
	return p.AppendPipeline.Close()
}

// closePipelines closes every pipeline still open; a request waiting in
// one fails with hraft.ErrPipelineShutdown.
func (t *transport) closePipelines() {
	t.mu.Lock()
	ps := make([]*trackedPipeline, 0, len(t.pipelines))
	for p := range t.pipelines {
		ps = append(ps, p)
	}
	t.mu.Unlock()
	for _, p := range ps {
		_ = p.Close()
	}
}
