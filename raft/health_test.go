//go:build linux

package raft

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
)

// mountTmpfs mounts a tmpfs of size bytes on a temporary directory for the
// test. Mounting needs root (CI and the dev machines run as root); a test
// run as another user skips.
func mountTmpfs(t *testing.T, size int) string {
	dir := t.TempDir()
	err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size))
	if err != nil {
		if os.Geteuid() != 0 {
			t.Skipf("mounting a tmpfs needs root: %v", err)
		}
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, 0) })
	return dir
}

// fill writes a file in dir until the filesystem is full.
func fill(t *testing.T, dir string) string {
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	require.NoError(t, err)
	defer func() { _ = f.Close() }()
	buf := make([]byte, 16<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			require.ErrorIs(t, err, syscall.ENOSPC)
			return path
		}
	}
}

func bigItem(i int) []*timebox.Event {
	return []*timebox.Event{{
		Timestamp: time.Unix(1700000000, 0).UTC(), Type: "big",
		Data: []byte(fmt.Sprintf("%q", fmt.Sprint(i, strings.Repeat("x", 8<<10)))),
	}}
}

// A node whose disk fills up refuses writes at once with ErrDiskFailure,
// reports it through Err, and takes writes again by itself once space is
// freed; no acknowledged event is lost, and the node restarts cleanly.
func TestDiskFullFailsFastAndRecovers(t *testing.T) {
	mnt := mountTmpfs(t, 8<<20)
	cfg := Config{DataDir: filepath.Join(mnt, "node")}
	p := newSingle(t, cfg)
	cfg = p.cfg
	st := newStore(t, p, timebox.Config{})
	id := timebox.NewAggregateID("order", "1")
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()

	acked := 0
	for ; acked < 3; acked++ {
		require.NoError(t, st.AppendEventsContext(ctx, id, int64(acked), bigItem(acked)))
	}
	require.NoError(t, p.Err())
	filler := fill(t, mnt)

	// Appends go on until a write meets the full disk.
	var err error
	unknown := false
	for i := 0; i < 1000 && err == nil; i++ {
		err = st.AppendEventsContext(ctx, id, int64(acked), bigItem(acked))
		if err == nil {
			acked++
		}
	}
	require.ErrorIs(t, err, ErrDiskFailure, "a write on a full disk")
	require.NoError(t, ctx.Err(), "it failed before its deadline")
	unknown = errors.Is(err, timebox.ErrUnknownOutcome)
	t.Logf("after %d acknowledged appends: %v", acked, err)
	require.ErrorIs(t, p.Err(), ErrDiskFailure)
	require.ErrorIs(t, p.Err(), syscall.ENOSPC)

	// While the disk is full, writes are refused at once: nothing written.
	err = st.AppendEventsContext(ctx, id, int64(acked), bigItem(acked))
	require.ErrorIs(t, err, ErrDiskFailure)
	require.NotErrorIs(t, err, timebox.ErrUnknownOutcome)

	require.NoError(t, os.Remove(filler))
	require.NoError(t, waitFor(ctx, "the node to report its disk healthy", func() (bool, error) {
		return p.Err() == nil, nil
	}))
	// The write of unknown outcome, if any, was in the log: it is applied
	// now, or was never stored.
	var evs []*timebox.Event
	require.NoError(t, waitFor(ctx, "an append to succeed again", func() (bool, error) {
		evs, err = st.GetEvents(id, 0)
		if err != nil {
			return false, err
		}
		err = st.AppendEventsContext(ctx, id, int64(len(evs)), bigItem(len(evs)))
		return err == nil, nil
	}))
	n := len(evs)
	require.True(t, n == acked || unknown && n == acked+1,
		"%d events stored, %d acknowledged (unknown outcome: %v)", n, acked, unknown)

	require.NoError(t, p.Close())
	p = newSingle(t, cfg)
	st = newStore(t, p, timebox.Config{})
	evs, err = st.GetEvents(id, 0)
	require.NoError(t, err)
	require.Len(t, evs, n+1)
	for i, ev := range evs {
		require.EqualValues(t, i, ev.Sequence)
		require.Equal(t, string(bigItem(i)[0].Data), string(ev.Data))
	}
}
