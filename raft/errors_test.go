package raft

import (
	"context"
	"errors"
	"io"
	"testing"

	hraft "github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
)

func TestApplyErrorClasses(t *testing.T) {
	p := newSingle(t, Config{})
	cases := []struct {
		err   error
		retry bool
	}{
		{hraft.ErrNotLeader, true},
		{hraft.ErrLeadershipTransferInProgress, true},
		{hraft.ErrLeadershipLost, false},
		{hraft.ErrAbortedByRestore, false},
	}
	for _, tc := range cases {
		err := p.applyError(tc.err)
		require.Equal(t, tc.retry, errors.Is(err, errNotLeader), tc.err)
		require.Equal(t, !tc.retry, errors.Is(err, timebox.ErrUnknownOutcome), tc.err)
	}
	ctx := context.Background()
	require.ErrorIs(t, p.forwardError(ctx, false, io.EOF), errNotLeader,
		"a request that cannot have reached the leader is retried")
	require.ErrorIs(t, p.forwardError(ctx, true, io.EOF), timebox.ErrUnknownOutcome,
		"a request that may have reached the leader is not")

	require.NoError(t, p.Close())
	require.ErrorIs(t, p.forwardError(ctx, true, io.EOF), timebox.ErrUnknownOutcome)
	require.ErrorIs(t, p.forwardError(ctx, false, io.EOF), timebox.ErrClosed)
	err := p.applyError(hraft.ErrRaftShutdown)
	require.ErrorIs(t, err, timebox.ErrClosed)
	require.ErrorIs(t, err, timebox.ErrUnknownOutcome)
}

func TestStateAndLeader(t *testing.T) {
	p := newSingle(t, Config{LocalID: "me"})
	require.Equal(t, Leader, p.State())
	require.Equal(t, "me", p.Leader().ID)
	require.Equal(t, p.mux.ln.Addr().String(), p.Leader().Address)
	require.NoError(t, p.Close())
	require.Equal(t, Shutdown, p.State())
}

func TestStateString(t *testing.T) {
	for s, want := range map[State]string{
		Follower: "Follower", Candidate: "Candidate", Leader: "Leader",
		Shutdown: "Shutdown", State(9): "State(9)",
	} {
		require.Equal(t, want, s.String())
	}
}
