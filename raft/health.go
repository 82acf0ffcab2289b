package raft

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	hraft "github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// ErrDiskFailure means this node cannot write its DataDir (the disk is
// full, or failed with an I/O error). A write refused with it was not
// written: the node refuses writes while Persistence.Err reports the
// failure, and a leader whose Raft log write failed stored nothing and
// stepped down. Retrying on another node may succeed at once; on this one
// it succeeds once the disk does again, which the node notices by itself.
// It deliberately does not match timebox.ErrUnavailable, which the Store
// retries for Config.RetryTimeout: a full or failing disk rarely clears
// that fast, so the caller sees it at once and decides.
var ErrDiskFailure = errors.New("raft: node cannot write to its disk")

const (
	// probeEvery is how often a node whose log store failed tries its
	// disk again, and retryEvery how often a state machine or term write
	// that failed is tried again.
	probeEvery = 250 * time.Millisecond
	retryEvery = 100 * time.Millisecond

	// probeFile is written, synced and removed in DataDir to see whether
	// the disk takes writes again; probeSize is its size.
	probeFile = "disk.probe"
	probeSize = 64 << 10
)

// health tracks the disk errors of a node's two writers: the Raft log and
// stable store, and the state machine file. Each is cleared by its
// writer's next success; the log store's also by a successful probe, since
// nothing writes it while the node refuses writes.
type health struct {
	log *slog.Logger

	mu       sync.Mutex
	logErr   error
	stateErr error
	// stateCh is closed while the state file fails, and replaced by an
	// open one when it recovers.
	stateCh chan struct{}
}

func newHealth(log *slog.Logger) *health {
	return &health{log: log, stateCh: make(chan struct{})}
}

// stateFailing returns a channel that is closed while, or as soon as, the
// state file fails.
func (h *health) stateFailing() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stateCh
}

// Err returns nil while the node can write its DataDir, else an error
// wrapping ErrDiskFailure and the last disk error.
func (h *health) Err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	err := h.logErr
	if err == nil {
		err = h.stateErr
	}
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrDiskFailure, err)
}

func (h *health) logFailed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.logErr != nil
}

// setLog records the outcome of a log or stable store write.
func (h *health) setLog(err error) {
	h.set(&h.logErr, err, "raft log")
}

// setState records the outcome of a state file write.
func (h *health) setState(err error) {
	h.set(&h.stateErr, err, "state file")
	h.mu.Lock()
	defer h.mu.Unlock()
	select {
	case <-h.stateCh:
		if err == nil {
			h.stateCh = make(chan struct{})
		}
	default:
		if err != nil {
			close(h.stateCh)
		}
	}
}

func (h *health) set(slot *error, err error, what string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	was := *slot
	*slot = err
	switch {
	case err != nil && was == nil:
		h.log.Error("raft: disk write failed; refusing writes until it recovers",
			slog.String("file", what), slog.Any("error", err))
	case err == nil && was != nil:
		h.log.Info("raft: disk writes succeed again", slog.String("file", what))
	}
}

// probe writes, syncs and removes a probe file in dir.
func probe(dir string) error {
	path := filepath.Join(dir, probeFile)
	out, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = out.Write(make([]byte, probeSize))
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if rerr := os.Remove(path); err == nil && !os.IsNotExist(rerr) {
		err = rerr
	}
	return err
}

// runProber probes the disk while the log store's last write failed, and
// clears the failure once a probe succeeds, so writes are let through
// again (and a failing one sets it anew).
func (p *Persistence) runProber() {
	defer p.wg.Done()
	t := time.NewTicker(probeEvery)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-t.C:
		}
		if p.health.logFailed() && probe(p.cfg.DataDir) == nil {
			p.health.setLog(nil)
		}
	}
}

// diskStore is the Raft log (behind its cache) and stable store with
// their write failures reported to health. A failed log write wraps
// ErrDiskFailure; a failed term or vote write is retried until it succeeds
// or the node closes, since Raft cannot go on without it (it panics on a
// failed term write).
type diskStore struct {
	logs   hraft.LogStore
	stable *raftboltdb.BoltStore
	health *health
	done   <-chan struct{}
	// snaps, once set, gives GetLog the latest snapshot (see GetLog).
	snaps hraft.SnapshotStore
}

var (
	_ hraft.LogStore    = (*diskStore)(nil)
	_ hraft.StableStore = (*diskStore)(nil)
)

// wrap returns err, from a log write through the cache (which keeps only
// its message), as the disk failure health recorded from the bolt store.
func (s *diskStore) wrap(err error) error {
	if err == nil {
		return nil
	}
	if herr := s.health.Err(); herr != nil {
		return herr
	}
	return fmt.Errorf("%w: %w", ErrDiskFailure, err)
}

// boltLog is the bolt store under the log cache, recording the outcome of
// every log write in health.
type boltLog struct {
	*raftboltdb.BoltStore
	health *health
}

func (b *boltLog) StoreLog(l *hraft.Log) error {
	return b.StoreLogs([]*hraft.Log{l})
}

func (b *boltLog) StoreLogs(logs []*hraft.Log) error {
	err := b.BoltStore.StoreLogs(logs)
	b.health.setLog(err)
	return err
}

func (b *boltLog) DeleteRange(lo, hi uint64) error {
	err := b.BoltStore.DeleteRange(lo, hi)
	b.health.setLog(err)
	return err
}

func (s *diskStore) FirstIndex() (uint64, error) { return s.logs.FirstIndex() }
func (s *diskStore) LastIndex() (uint64, error)  { return s.logs.LastIndex() }

// GetLog returns the entry at idx. When the log lacks it but idx is the
// latest snapshot's index and the log holds nothing below it, it returns
// a no-op entry with the snapshot's term. hashicorp/raft checks a leader's
// previous entry against the log alone, unless it is the log's last: a
// follower that installed a snapshot at S, stored S+1, and restarted
// before the leader heard its ack rejects the resent S+1 (previous S "not
// found"), and the leader resends the snapshot, which changes nothing, for
// ever. The stand-in is never sent to a follower: a leader whose log
// starts after S takes a follower's previous entry at S from the snapshot
// itself and sends a snapshot to one that needs S or earlier.
func (s *diskStore) GetLog(idx uint64, l *hraft.Log) error {
	err := s.logs.GetLog(idx, l)
	if !errors.Is(err, hraft.ErrLogNotFound) || s.snaps == nil || idx == 0 {
		return err
	}
	metas, lerr := s.snaps.List()
	if lerr != nil || len(metas) == 0 || metas[0].Index != idx {
		return err
	}
	if first, ferr := s.logs.FirstIndex(); ferr != nil || first != 0 && first <= idx {
		return err
	}
	*l = hraft.Log{Index: idx, Term: metas[0].Term, Type: hraft.LogNoop}
	return nil
}

func (s *diskStore) StoreLog(l *hraft.Log) error {
	return s.wrap(s.logs.StoreLog(l))
}

func (s *diskStore) StoreLogs(logs []*hraft.Log) error {
	return s.wrap(s.logs.StoreLogs(logs))
}

func (s *diskStore) DeleteRange(lo, hi uint64) error {
	return s.wrap(s.logs.DeleteRange(lo, hi))
}

func (s *diskStore) Get(k []byte) ([]byte, error)       { return s.stable.Get(k) }
func (s *diskStore) GetUint64(k []byte) (uint64, error) { return s.stable.GetUint64(k) }

func (s *diskStore) Set(k, v []byte) error {
	return s.retry(func() error { return s.stable.Set(k, v) })
}

func (s *diskStore) SetUint64(k []byte, v uint64) error {
	return s.retry(func() error { return s.stable.SetUint64(k, v) })
}

func (s *diskStore) retry(fn func() error) error {
	for {
		err := fn()
		s.health.setLog(err)
		if err == nil {
			return nil
		}
		t := time.NewTimer(retryEvery)
		select {
		case <-s.done:
			t.Stop()
			return err
		case <-t.C:
		}
	}
}
