package raft

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	hraft "github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/closer"
)

const (
	// logFile is the Raft log and stable store in DataDir; Raft snapshots
	// go to DataDir/snapshots.
	logFile         = "raft.db"
	snapshotsRetain = 2

	// maxPool is how many idle connections the transport keeps per peer,
	// and transportWait its I/O deadline.
	maxPool       = 4
	transportWait = 10 * time.Second
	// pipelineGrace is how long Close waits for Raft to stop before it
	// closes the replication pipelines (see transport).
	pipelineGrace = 2 * time.Second

	// readyAttempt bounds one attempt at catching up before Ready.
	readyAttempt = 10 * time.Second
)

// Persistence is one node of a Raft cluster holding a Timebox store. Every
// node accepts every call: writes go through the leader and return once
// applied on this node, and reads are served from this node's state.
type Persistence struct {
	cfg  Config
	tune tuning
	log  *slog.Logger

	fsm    *fsm
	pub    *publisher
	store  *raftboltdb.BoltStore
	stable *diskStore // the log cache and store, failures reported to health
	logs   hraft.LogStore
	health *health
	mux    *mux
	trans  *transport
	raft   *hraft.Raft
	fwd    *forwarder
	nudger *nudger

	ready chan struct{}
	done  chan struct{}
	// started is closed once raft is set: the mux serves forwarded calls
	// from before then, which must not touch it.
	started chan struct{}
	ctx     context.Context
	cancel  context.CancelFunc
	closed  closer.Flag
	wg      sync.WaitGroup

	// Raft never answers a future still queued when it shuts down, so
	// Close waits for every call awaiting one before it stops Raft.
	callMu sync.RWMutex
	calls  sync.WaitGroup
}

var _ timebox.Backend = (*Persistence)(nil)

// NewPersistence lays cfgs over DefaultConfig, validates the result, and
// starts the node: it opens DataDir, listens on Address and joins (or, the
// first time, bootstraps) the cluster. It returns the Config's validation
// error, or an error when DataDir is unusable, a bolt file cannot be
// opened or Address cannot be listened on; nothing is left open then.
func NewPersistence(cfgs ...Config) (*Persistence, error) {
	cfg := timebox.Configure(DefaultConfig(), cfgs...)
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Persistence{
		cfg:     cfg,
		tune:    cfg.timings(),
		log:     cfg.Logger,
		ready:   make(chan struct{}),
		done:    make(chan struct{}),
		started: make(chan struct{}),
		nudger:  newNudger(),
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	p.health = newHealth(p.log)
	p.ctx, p.cancel = context.WithCancel(context.Background())
	if err := p.open(); err != nil {
		p.shutdown()
		return nil, err
	}
	p.wg.Add(3)
	go p.watchReady()
	go p.runNudger()
	go p.runProber()
	return p, nil
}

func (p *Persistence) open() error {
	dir := p.cfg.DataDir
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("raft: data directory: %w", err)
	}
	// The log store's file lock keeps a second process out of DataDir
	// before the state file is looked at.
	if err := p.openLog(dir); err != nil {
		return err
	}
	p.pub = newPublisher(p.cfg.Publisher, p.log)
	var err error
	if p.fsm, err = openFSM(dir, p.pub, p.log, p.health, p.done); err != nil {
		return err
	}
	logger := newLogger(p.log)
	snaps, err := hraft.NewFileSnapshotStoreWithLogger(dir, snapshotsRetain, logger)
	if err != nil {
		return fmt.Errorf("raft: snapshot store: %w", err)
	}
	if err := p.listen(logger); err != nil {
		return err
	}
	p.stable.snaps = snaps
	conf := raftConfig(p.cfg.LocalID, p.tune, logger)
	if err := p.bootstrap(conf, snaps); err != nil {
		return err
	}
	p.raft, err = hraft.NewRaft(conf, p.fsm, p.logs, p.stable, snaps, p.trans)
	if err != nil {
		return fmt.Errorf("raft: start: %w", err)
	}
	close(p.started)
	return nil
}

// openLog opens the Raft log and stable store, reporting their write
// failures to p.health, with a cache of the last LogTailSize entries in
// front of the log.
func (p *Persistence) openLog(dir string) error {
	store, err := openBoltStore(dir)
	if err != nil {
		return err
	}
	p.store = store
	cache, err := hraft.NewLogCache(p.cfg.LogTailSize, &boltLog{BoltStore: store, health: p.health})
	if err != nil {
		return err
	}
	p.stable = &diskStore{logs: cache, stable: store, health: p.health, done: p.done}
	p.logs = p.stable
	return nil
}

// openLogStore opens the Raft log and stable store in dir, with a cache of
// the last tail entries in front of the log.
func openLogStore(dir string, tail int) (*raftboltdb.BoltStore, hraft.LogStore, error) {
	store, err := openBoltStore(dir)
	if err != nil {
		return nil, nil, err
	}
	logs, err := hraft.NewLogCache(tail, store)
	if err != nil {
		_ = store.Close()
		return nil, nil, err
	}
	return store, logs, nil
}

// openBoltStore opens the bolt file holding the Raft log and stable store.
func openBoltStore(dir string) (*raftboltdb.BoltStore, error) {
	store, err := raftboltdb.New(raftboltdb.Options{
		Path: filepath.Join(dir, logFile),
		BoltOptions: &bbolt.Options{
			Timeout:        time.Second,
			NoFreelistSync: true,
			FreelistType:   bbolt.FreelistMapType,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("raft: open %s: %w", logFile, err)
	}
	return store, nil
}

func (p *Persistence) listen(logger hclog.Logger) error {
	ln, err := net.Listen("tcp", p.cfg.Address)
	if err != nil {
		return fmt.Errorf("raft: listen: %w", err)
	}
	p.mux = newMux(ln, p.newMuxConfig(logger))
	p.fwd = newForwarder(p.mux, p.tune.dialTimeout)
	p.trans = newTransport(p.mux, p.advertise(), logger)
	return nil
}

// newTransport runs Raft's network transport over the mux.
func newTransport(m *mux, advertise string, logger hclog.Logger) *transport {
	return newTrackingTransport(hraft.NewNetworkTransportWithConfig(
		&hraft.NetworkTransportConfig{
			Stream:  newStreamLayer(m, advertise),
			MaxPool: maxPool,
			Timeout: transportWait,
			Logger:  logger,
		}))
}

// advertise is the address other nodes reach this one at: its entry in
// Servers, else Address, else (for port 0) what the listener got.
func (p *Persistence) advertise() string {
	for _, s := range p.cfg.Servers {
		if s.ID == p.cfg.LocalID {
			return s.Address
		}
	}
	if _, port, _ := net.SplitHostPort(p.cfg.Address); port != "0" {
		return p.cfg.Address
	}
	return p.mux.ln.Addr().String()
}

func raftConfig(id string, tune tuning, logger hclog.Logger) *hraft.Config {
	conf := hraft.DefaultConfig()
	conf.LocalID = hraft.ServerID(id)
	conf.Logger = logger
	conf.HeartbeatTimeout = tune.heartbeatTimeout
	conf.ElectionTimeout = tune.electionTimeout
	conf.LeaderLeaseTimeout = tune.leaderLeaseTimeout
	conf.CommitTimeout = tune.commitTimeout
	conf.SnapshotInterval = tune.snapshotInterval
	conf.SnapshotThreshold = tune.snapshotThreshold
	conf.TrailingLogs = tune.trailingLogs
	// Proposers queue up to MaxAppendEntries entries without waiting for
	// the leader loop. Raft does not answer entries still queued when it
	// shuts down, which is why Close waits for pending calls first.
	conf.BatchApplyCh = true
	return conf
}

// bootstrap writes the initial voter set when DataDir has no Raft state.
func (p *Persistence) bootstrap(conf *hraft.Config, snaps hraft.SnapshotStore) error {
	exists, err := hraft.HasExistingState(p.logs, p.store, snaps)
	if err != nil {
		return fmt.Errorf("raft: read state: %w", err)
	}
	if exists {
		return nil
	}
	servers := p.cfg.Servers
	if len(servers) == 0 {
		servers = []Server{{ID: p.cfg.LocalID, Address: string(p.trans.LocalAddr())}}
	}
	var voters hraft.Configuration
	for _, s := range servers {
		voters.Servers = append(voters.Servers, hraft.Server{
			Suffrage: hraft.Voter,
			ID:       hraft.ServerID(s.ID),
			Address:  hraft.ServerAddress(s.Address),
		})
	}
	err = hraft.BootstrapCluster(conf, p.logs, p.store, snaps, p.trans, voters)
	if err != nil {
		return fmt.Errorf("raft: bootstrap: %w", err)
	}
	return nil
}

// NewStore returns a Store on this node.
func (p *Persistence) NewStore(cfg timebox.Config) (*timebox.Store, error) {
	return timebox.NewStore(p, cfg)
}

// Ready is closed once this node knows a leader and has applied every
// entry the leader had committed when the node asked.
func (p *Persistence) Ready() <-chan struct{} {
	return p.ready
}

// State is a node's Raft role.
type State uint8

// The roles a node can be in.
const (
	// Follower replicates the leader's log (and forwards writes to it).
	Follower State = iota
	// Candidate is standing for election.
	Candidate
	// Leader commits the cluster's writes.
	Leader
	// Shutdown is a closed node.
	Shutdown
)

// String returns "Follower", "Candidate", "Leader" or "Shutdown".
func (s State) String() string {
	switch s {
	case Follower:
		return "Follower"
	case Candidate:
		return "Candidate"
	case Leader:
		return "Leader"
	case Shutdown:
		return "Shutdown"
	default:
		return fmt.Sprintf("State(%d)", uint8(s))
	}
}

// State reports this node's Raft role; Shutdown after Close.
func (p *Persistence) State() State {
	switch p.raft.State() {
	case hraft.Follower:
		return Follower
	case hraft.Candidate:
		return Candidate
	case hraft.Leader:
		return Leader
	default:
		return Shutdown
	}
}

// Err reports this node's health: nil while it can write its DataDir,
// else an error wrapping ErrDiskFailure and the disk's error (no space
// left, I/O error). While Err is not nil the node refuses writes with that
// error at once; it tries its disk again every so often and takes writes
// again, by itself, once the disk does.
func (p *Persistence) Err() error {
	return p.health.Err()
}

// Leader reports the current leader as this node knows it; the zero
// Server when it knows none.
func (p *Persistence) Leader() Server {
	addr, id := p.raft.LeaderWithID()
	return Server{ID: string(id), Address: string(addr)}
}

// Close leaves the cluster's traffic, stops Raft, delivers the events
// still queued for the Publisher, and closes the files. Later calls return
// timebox.ErrClosed; a second Close returns nil.
func (p *Persistence) Close() error {
	if p.closed.Swap(true) {
		return nil
	}
	return p.shutdown()
}

// shutdown releases whatever open got to, in reverse order.
func (p *Persistence) shutdown() error {
	p.callMu.Lock()
	p.closed.Store(true)
	p.callMu.Unlock()
	p.cancel()
	close(p.done)
	p.calls.Wait()
	var errs []error
	if p.raft != nil {
		errs = append(errs, p.stopRaft())
	}
	if p.trans != nil {
		errs = append(errs, p.trans.Close())
	}
	if p.mux != nil {
		_ = p.mux.Close()
	}
	if p.fwd != nil {
		p.fwd.close()
	}
	p.wg.Wait()
	p.pub.close()
	if p.fsm != nil {
		errs = append(errs, p.fsm.close())
	}
	if p.store != nil {
		errs = append(errs, p.store.Close())
	}
	return errors.Join(errs...)
}

// stopRaft shuts Raft down and waits for it. When that takes longer than
// pipelineGrace, it closes the transport's replication pipelines: one left
// deadlocked by hashicorp/raft (see transport) would keep Raft from ever
// stopping.
func (p *Persistence) stopRaft() error {
	stopped := make(chan error, 1)
	go func() { stopped <- p.raft.Shutdown().Error() }()
	t := time.NewTimer(pipelineGrace)
	defer t.Stop()
	select {
	case err := <-stopped:
		return err
	case <-t.C:
		p.log.Warn("raft: shutdown waits on replication; closing its pipelines")
		p.trans.closePipelines()
		return <-stopped
	}
}

// raftCall runs fn, which waits on a Raft future, unless the node is
// closing; Close waits for it before stopping Raft.
func (p *Persistence) raftCall(fn func() error) error {
	p.callMu.RLock()
	if p.closed.Load() {
		p.callMu.RUnlock()
		return timebox.ErrClosed
	}
	p.calls.Add(1)
	p.callMu.RUnlock()
	defer p.calls.Done()
	return fn()
}

// checkOpen returns timebox.ErrClosed once p is closed (closer.Flag).
func (p *Persistence) checkOpen() error {
	return p.closed.Check()
}

// watchReady closes ready once a leader is known and this node has
// applied what that leader had committed.
func (p *Persistence) watchReady() {
	defer p.wg.Done()
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-t.C:
		}
		if p.tryReady() {
			p.fsm.ready.Store(true)
			close(p.ready)
			return
		}
	}
}

func (p *Persistence) tryReady() bool {
	if p.Leader().Address == "" {
		return false
	}
	ctx, cancel := context.WithTimeout(p.ctx, readyAttempt)
	defer cancel()
	return p.catchUp(ctx)() == nil
}
