package raft

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	hraft "github.com/hashicorp/raft"
	"go.etcd.io/bbolt"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/codec"
)

// stateFile is the state machine's bolt file in DataDir. It is written
// without fsync: the Raft log is what is durable. cleanFile exists only
// while the state file is known to be complete on disk, between a Close
// that synced it and the next open; a state file without it may be torn
// and is rebuilt from the latest Raft snapshot and the log.
const (
	stateFile = "state.db"
	cleanFile = "state.clean"
)

// A Raft snapshot is snapshotMagic, the applied index it holds (8 bytes
// BE), then the state file byte for byte.
var snapshotMagic = []byte("TBRAFT1\n")

var errBadStateFile = errors.New("raft: not a timebox state file")

// fsm is the replicated state machine. Apply and Restore run on Raft's FSM
// goroutine only; reads run anywhere, under mu, so Restore can swap the
// file beneath them.
type fsm struct {
	path    string
	mu      sync.RWMutex
	db      *bbolt.DB
	applied atomic.Uint64 // last log index applied to db

	waitMu sync.Mutex
	waitCh chan struct{} // closed and replaced whenever applied moves

	ready atomic.Bool // events are published once set
	pub   *publisher  // nil without a Publisher
	log   *slog.Logger

	health *health
	stop   <-chan struct{} // closed when the node closes
	// abandoned is set once a batch was given up at Close while the state
	// file could not be written: every later batch is given up too, and no
	// snapshot is taken, so the state never skips an entry.
	abandoned bool
}

var (
	_ hraft.BatchingFSM = (*fsm)(nil)
	_ hraft.FSMSnapshot = (*fsmSnapshot)(nil)
)

func openFSM(
	dir string, pub *publisher, log *slog.Logger, h *health, stop <-chan struct{},
) (*fsm, error) {
	f := &fsm{
		path:   filepath.Join(dir, stateFile),
		waitCh: make(chan struct{}),
		pub:    pub,
		log:    log,
		health: h,
		stop:   stop,
	}
	clean := filepath.Join(dir, cleanFile)
	if _, err := os.Stat(clean); err != nil {
		if err := discardState(f.path, log); err != nil {
			return nil, err
		}
	}
	db, err := openState(f.path, true)
	if err != nil {
		return nil, err
	}
	f.db = db
	_ = f.db.View(func(tx *bbolt.Tx) error {
		f.applied.Store(getApplied(tx))
		return nil
	})
	// From here on the file is written unsynced until Close.
	if err := os.Remove(clean); err != nil && !os.IsNotExist(err) {
		_ = db.Close()
		return nil, fmt.Errorf("raft: %w", err)
	}
	syncDir(dir)
	return f, nil
}

// discardState removes a state file that was not closed cleanly, so Raft
// rebuilds it from its latest snapshot and the log.
func discardState(path string, log *slog.Logger) error {
	if _, err := os.Stat(path); os.IsNotExist(err) {
		return nil
	}
	log.Warn("raft: state file was not closed cleanly; rebuilding it from the Raft log",
		slog.String("path", path))
	for _, p := range []string{path, path + ".restore"} {
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("raft: discard state: %w", err)
		}
	}
	return nil
}

// openState opens a state file, creating its buckets when create is set
// and requiring them otherwise.
func openState(path string, create bool) (*bbolt.DB, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{
		Timeout:        time.Second,
		NoFreelistSync: true,
		FreelistType:   bbolt.FreelistMapType,
		NoSync:         true,
	})
	if err != nil {
		return nil, fmt.Errorf("raft: open %s: %w", path, err)
	}
	err = db.View(checkBuckets)
	if create || err == nil {
		err = db.Update(createBuckets)
	}
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	return db, nil
}

// view runs fn in a read transaction on the current state file.
func (f *fsm) view(fn func(*bbolt.Tx) error) error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return timebox.ErrClosed
	}
	return f.db.View(fn)
}

func (f *fsm) close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.db == nil {
		return nil
	}
	err := f.db.Sync()
	if cerr := f.db.Close(); err == nil {
		err = cerr
	}
	f.db = nil
	if err != nil {
		return fmt.Errorf("raft: close state: %w", err)
	}
	return markClean(filepath.Join(filepath.Dir(f.path), cleanFile))
}

// markClean records that the state file is complete on disk.
func markClean(path string) error {
	out, err := os.Create(path)
	if err == nil {
		err = out.Sync()
		if cerr := out.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("raft: mark state clean: %w", err)
	}
	syncDir(filepath.Dir(path))
	return nil
}

// changed returns a channel closed the next time the applied index moves.
func (f *fsm) changed() <-chan struct{} {
	f.waitMu.Lock()
	defer f.waitMu.Unlock()
	return f.waitCh
}

func (f *fsm) advance(idx uint64) {
	f.applied.Store(idx)
	f.waitMu.Lock()
	close(f.waitCh)
	f.waitCh = make(chan struct{})
	f.waitMu.Unlock()
}

// Apply applies one log entry.
func (f *fsm) Apply(l *hraft.Log) any {
	return f.ApplyBatch([]*hraft.Log{l})[0]
}

// errAbandoned answers the entries of a batch given up at Close.
var errAbandoned = fmt.Errorf("raft: state file not writable at close: %w: %w",
	timebox.ErrClosed, timebox.ErrUnknownOutcome)

// ApplyBatch applies committed entries in one bolt transaction that also
// records the last applied index. Entries at or below the recorded index
// were applied before a restart and are skipped. Each response is nil, a
// *timebox.VersionConflictError, or an error for a malformed command.
//
// When the state file cannot be written (disk full, I/O error), the batch
// is tried again every retryEvery, with the failure reported by
// Persistence.Err, until it succeeds: this node's applies wait for its
// disk, and never skip an entry. Only Close gives up the batch (its
// entries are applied again from the log at the next start).
func (f *fsm) ApplyBatch(logs []*hraft.Log) []any {
	for !f.abandoned {
		res, err := f.applyBatch(logs)
		f.health.setState(err)
		if err == nil {
			return res
		}
		t := time.NewTimer(retryEvery)
		select {
		case <-f.stop:
			t.Stop()
			f.abandoned = true
		case <-t.C:
		}
	}
	res := make([]any, len(logs))
	for i := range res {
		res[i] = errAbandoned
	}
	return res
}

func (f *fsm) applyBatch(logs []*hraft.Log) ([]any, error) {
	res := make([]any, len(logs))
	var pubs [][]*timebox.Event
	publish := f.pub != nil && f.ready.Load()
	var last uint64
	err := f.db.Update(func(tx *bbolt.Tx) error {
		applied := getApplied(tx)
		last = applied
		for i, l := range logs {
			if l.Index <= applied {
				continue
			}
			last = l.Index
			if l.Type != hraft.LogCommand {
				continue
			}
			r, evs, err := applyCommand(tx, l.Index, l.Data, publish)
			if err != nil {
				return err
			}
			res[i] = r
			if evs != nil {
				pubs = append(pubs, evs)
			}
		}
		if last == applied {
			return nil
		}
		return putApplied(tx, last)
	})
	if err != nil {
		return nil, fmt.Errorf("apply to state file: %w", err)
	}
	if last > f.applied.Load() {
		f.advance(last)
	}
	if len(pubs) > 0 {
		f.pub.push(pubs)
	}
	return res, nil
}

// applyCommand applies the command at log index idx. A rejected or
// malformed command is a response, not an error; the error is a failure of
// the state file. evs holds the appended events when decode is set.
func applyCommand(tx *bbolt.Tx, idx uint64, data []byte, decode bool) (any, []*timebox.Event, error) {
	op, err := commandOp(data)
	if err != nil {
		return err, nil, nil
	}
	switch op {
	case opAppend:
		c, err := decodeAppend(data)
		if err != nil {
			return err, nil, nil
		}
		return applyAppend(tx, idx, data, c, decode)
	case opSnapshot:
		c, err := decodeSnapshot(data)
		if err != nil {
			return err, nil, nil
		}
		r, err := applySnapshot(tx, c)
		return r, nil, err
	case opArchive, opLease, opAck, opRelease:
		r, err := applyArchiveOp(tx, op, data)
		return r, nil, err
	case opClaim, opCommit, opUnlease, opReset, opDelete:
		r, err := applyConsumerOp(tx, idx, op, data)
		return r, nil, err
	default:
		return fmt.Errorf("%w: op %d", errMalformedCommand, op), nil, nil
	}
}

// applyAppend applies c, the command data at log index idx: when the
// head is as expected, it stores the events, the index change and the
// feed entry.
func applyAppend(
	tx *bbolt.Tx, idx uint64, data []byte, c *appendCmd, decode bool,
) (any, []*timebox.Event, error) {
	rec, _ := getAgg(tx, c.key)
	if rec.head != c.expected {
		conflict, err := newConflict(tx, c.key, c.expected, rec.head)
		return conflict, nil, err
	}
	if len(c.events) == 0 {
		return nil, nil, nil
	}
	if err := checkKeys(c.key, c.index); err != nil {
		return err, nil, nil
	}
	b := tx.Bucket(bucketEvents)
	for i, ev := range c.events {
		if err := b.Put(eventKey(c.key, c.expected+int64(i)), ev); err != nil {
			return nil, nil, err
		}
	}
	rec.head += int64(len(c.events))
	if err := putAgg(tx, c.key, rec); err != nil {
		return nil, nil, err
	}
	if err := applyIndex(tx, c.key, c.index); err != nil {
		return nil, nil, err
	}
	if err := putFeed(tx, idx, data); err != nil {
		return nil, nil, err
	}
	if !decode {
		return nil, nil, nil
	}
	return nil, decodeEvents(c), nil
}

func newConflict(tx *bbolt.Tx, key string, expected, head int64) (*timebox.VersionConflictError, error) {
	res := &timebox.VersionConflictError{
		ExpectedSequence: expected,
		ActualSequence:   head,
		NewEvents:        []*timebox.Event{},
	}
	if expected >= head {
		return res, nil
	}
	evs, err := loadEvents(tx, key, expected)
	if err != nil {
		return nil, err
	}
	if evs != nil {
		res.NewEvents = evs
	}
	return res, nil
}

func decodeEvents(c *appendCmd) []*timebox.Event {
	id, err := codec.DecodeID(c.key)
	if err != nil {
		return nil
	}
	res, err := codec.DecodeEvents(id, c.events)
	if err != nil {
		return nil
	}
	return res
}

func applyIndex(tx *bbolt.Tx, key string, c timebox.IndexChange) error {
	if c.Status != nil {
		if err := setStatus(tx, key, *c.Status, c.StatusTime); err != nil {
			return err
		}
	}
	for label, value := range c.Labels {
		if err := setLabel(tx, key, label, value); err != nil {
			return err
		}
	}
	return nil
}

// applySnapshot stores c's snapshot unless a newer one is stored, or, for
// an IfHead snapshot, unless the aggregate is live with its head at c's
// sequence; the check runs in Apply, so no append can slip in between.
// An IfHead snapshot it does not store is answered with skipped; the
// error is a failure of the state file.
func applySnapshot(tx *bbolt.Tx, c *snapshotCmd) (any, error) {
	rec, live := getAgg(tx, c.key)
	if c.ifHead && (!live || rec.head != c.sequence) {
		return skipped, nil
	}
	if rec.hasSnap && c.sequence < rec.snapSeq {
		return nil, nil
	}
	if err := checkKeys(c.key, timebox.IndexChange{}); err != nil {
		return err, nil
	}
	if err := tx.Bucket(bucketSnaps).Put([]byte(c.key), c.data); err != nil {
		return nil, err
	}
	rec.hasSnap, rec.snapSeq = true, c.sequence
	rec.head = max(rec.head, c.sequence)
	if c.trim {
		if err := trimEvents(tx, c.key, c.sequence); err != nil {
			return nil, err
		}
	}
	return nil, putAgg(tx, c.key, rec)
}

// skipped answers an IfHead snapshot that was not stored; it travels to a
// forwarding follower as a result (codeResult).
var skipped = &consumerResult{err: timebox.ErrSnapshotSkipped}

// Snapshot captures the state in a read transaction, which Persist streams
// while Apply goes on writing.
func (f *fsm) Snapshot() (hraft.FSMSnapshot, error) {
	if f.abandoned {
		return nil, errAbandoned
	}
	tx, err := f.db.Begin(false)
	if err != nil {
		return nil, fmt.Errorf("raft: snapshot: %w", err)
	}
	return &fsmSnapshot{tx: tx, applied: getApplied(tx)}, nil
}

// Restore replaces the whole state with a snapshot's, unless the local
// state already holds everything the snapshot does (as at every restart,
// when Raft restores its latest snapshot into a state file that is at
// least as new).
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer func() { _ = rc.Close() }()
	hdr := make([]byte, len(snapshotMagic)+8)
	if _, err := io.ReadFull(rc, hdr); err != nil {
		return fmt.Errorf("raft: restore: read header: %w", err)
	}
	if !bytes.Equal(hdr[:len(snapshotMagic)], snapshotMagic) {
		return fmt.Errorf("raft: restore: %w", errBadStateFile)
	}
	idx := binary.BigEndian.Uint64(hdr[len(snapshotMagic):])
	if idx <= f.applied.Load() {
		return nil
	}
	tmp := f.path + ".restore"
	if err := writeFile(tmp, rc); err != nil {
		f.health.setState(err)
		return err
	}
	var old map[string]int64
	if f.pub != nil && f.ready.Load() {
		old = f.heads()
	}
	if err := f.swap(tmp); err != nil {
		return err
	}
	f.advance(idx)
	if old != nil {
		f.publishRestored(old)
	}
	return nil
}

// heads returns the head of every aggregate in the state file.
func (f *fsm) heads() map[string]int64 {
	res := map[string]int64{}
	_ = f.view(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketAggs).ForEach(func(k, _ []byte) error {
			rec, _ := getAgg(tx, string(k))
			res[string(k)] = rec.head
			return nil
		})
	})
	return res
}

// publishRestored publishes what a snapshot installed after Ready added to
// the state, given the heads before it: for each aggregate, in key order,
// one batch of its stored events from its old head on (from 0 when its
// head went back, as after an archive and a new start). Events the
// snapshot no longer holds (trimmed or archived meanwhile) cannot be.
func (f *fsm) publishRestored(old map[string]int64) {
	var pubs [][]*timebox.Event
	err := f.view(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketAggs).ForEach(func(k, _ []byte) error {
			rec, _ := getAgg(tx, string(k))
			from, ok := old[string(k)]
			switch {
			case ok && rec.head == from:
				return nil
			case rec.head < from:
				from = 0
			}
			evs, err := loadEvents(tx, string(k), from)
			if err != nil {
				return err
			}
			if len(evs) > 0 {
				pubs = append(pubs, evs)
			}
			return nil
		})
	})
	if err != nil {
		f.log.Error("raft: publish events of an installed snapshot", slog.Any("error", err))
	}
	if len(pubs) > 0 {
		f.pub.push(pubs)
	}
}

// swap replaces the state file with the one at tmp.
func (f *fsm) swap(tmp string) error {
	db, err := openState(tmp, false)
	if err != nil {
		return fmt.Errorf("raft: restore: %w", err)
	}
	if err := db.Close(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.db.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, f.path); err != nil {
		return fmt.Errorf("raft: restore: %w", err)
	}
	syncDir(filepath.Dir(f.path))
	db, err = openState(f.path, false)
	if err != nil {
		// Without a state file this node cannot go on.
		panic(fmt.Sprintf("raft: reopen restored state: %v", err))
	}
	f.db = db
	return nil
}

func writeFile(path string, r io.Reader) error {
	out, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("raft: restore: %w", err)
	}
	_, err = io.Copy(out, r)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("raft: restore: %w", err)
	}
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

// fsmSnapshot streams a read transaction's view of the state file.
type fsmSnapshot struct {
	tx      *bbolt.Tx
	applied uint64
}

// Persist writes the snapshot header and the state file to sink.
func (s *fsmSnapshot) Persist(sink hraft.SnapshotSink) error {
	hdr := binary.BigEndian.AppendUint64(bytes.Clone(snapshotMagic), s.applied)
	_, err := sink.Write(hdr)
	if err == nil {
		_, err = s.tx.WriteTo(sink)
	}
	if err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("raft: persist snapshot: %w", err)
	}
	return sink.Close()
}

// Release ends the read transaction.
func (s *fsmSnapshot) Release() {
	_ = s.tx.Rollback()
}
