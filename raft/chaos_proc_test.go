package raft

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/rpc"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/history"
)

// TestChaosProcessesKilled runs the cluster as three OS processes, each
// this test binary run again in node mode (TestHelperNodeProcess), and
// kills them with SIGKILL under load: the leader alone, and all three at
// once. A killed node leaves its state file unsynced and unmarked, so on
// restart it is rebuilt from the Raft snapshot and log.
//
// The workload runs in this process through one store per node. Each
// store's backend (procBackend) sends the Backend calls to its node over
// net/rpc, as a thin client would; the node runs them on its Persistence
// and sends back the result, with its error class (conflict, unknown
// outcome, closed, timeout) kept. A call whose connection breaks after it
// was sent is of unknown outcome; one that could not be sent wrote
// nothing. As in the in-process scenarios, event reads first catch up
// with the leader's commit index.
func TestChaosProcessesKilled(t *testing.T) {
	plan := chaosPlan()
	nodes := startProcs(t)
	stores := make([]*timebox.Store, len(nodes))
	for i, n := range nodes {
		st, err := timebox.NewStore(n.backend, timebox.Config{Hooks: history.Hooks{}})
		require.NoError(t, err)
		stores[i] = st
	}
	var kills atomic.Int64
	history.RunChaos(t, plan, "raft", "processes SIGKILLed, restarted", stores,
		func(ctx context.Context) error {
			return rounds(ctx, plan, 2, func(round int) error {
				victims, err := procVictims(ctx, nodes, round)
				if err != nil {
					return err
				}
				for _, n := range victims {
					if err := n.kill(); err != nil {
						return err
					}
					kills.Add(1)
				}
				if err := history.Sleep(ctx, plan.Pick(300, 2000)*time.Millisecond); err != nil {
					return err
				}
				return restartProcs(ctx, victims)
			})
		})
	t.Logf("processes killed: %d", kills.Load())
	require.Positive(t, kills.Load())
	requireSameState(t, nodes)

	// The archive works through the processes: archived on one node,
	// a handler error keeps the record, consumed on another.
	id := timebox.NewAggregateID("archive", "proc")
	require.NoError(t, stores[0].AppendEvents(id, 0, items("p", 2)))
	require.NoError(t, stores[0].Archive(id))
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	errFail := errors.New("handler failed")
	err := stores[1].ConsumeArchive(ctx, func(context.Context, *timebox.ArchiveRecord) error {
		return errFail
	})
	require.ErrorIs(t, err, errFail)
	var got *timebox.ArchiveRecord
	require.NoError(t, stores[2].ConsumeArchive(ctx, func(_ context.Context, r *timebox.ArchiveRecord) error {
		got = r
		return nil
	}))
	require.Equal(t, id, got.AggregateID)
	require.Len(t, got.Events, 2)
	for _, n := range nodes {
		require.NoError(t, n.stop())
	}
}

// procVictims picks the nodes to kill in a round: the leader, then all
// three, then a follower, in turn.
func procVictims(ctx context.Context, nodes []*procNode, round int) ([]*procNode, error) {
	if round%3 == 1 {
		return nodes, nil
	}
	leader, err := procLeader(ctx, nodes)
	if err != nil {
		return nil, err
	}
	if round%3 == 0 {
		return []*procNode{nodes[leader]}, nil
	}
	return []*procNode{nodes[(leader+1)%len(nodes)]}, nil
}

func restartProcs(ctx context.Context, nodes []*procNode) error {
	for _, n := range nodes {
		if err := n.start(); err != nil {
			return err
		}
	}
	for _, n := range nodes {
		if err := n.waitUp(ctx); err != nil {
			return err
		}
	}
	return nil
}

// procLeader waits until the nodes agree on a leader and returns it.
func procLeader(ctx context.Context, nodes []*procNode) (int, error) {
	res := -1
	err := waitFor(ctx, "the node processes to agree on a leader", func() (bool, error) {
		l, ok := procAgreed(ctx, nodes)
		res = l
		return ok, nil
	})
	return res, err
}

func procAgreed(ctx context.Context, nodes []*procNode) (int, bool) {
	res := -1
	var ids []string
	for i, n := range nodes {
		var r NodeReply
		if err := n.backend.call(ctx, "Status", &NodeArgs{}, &r); err != nil {
			return -1, false
		}
		if r.State == Leader.String() {
			res = i
		}
		ids = append(ids, r.Leader)
	}
	for _, id := range ids {
		if res < 0 || id != nodes[res].spec.ID {
			return -1, false
		}
	}
	return res, true
}

// requireSameState requires every node process to report the same state
// digest once it has caught up with the leader.
func requireSameState(t *testing.T, nodes []*procNode) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	var hashes []string
	for ctx.Err() == nil {
		hashes = hashes[:0]
		for _, n := range nodes {
			var r NodeReply
			err := n.backend.call(ctx, "Hash", &NodeArgs{Timeout: waitLong}, &r)
			if err == nil {
				err = r.err()
			}
			if err != nil {
				break
			}
			hashes = append(hashes, r.Hash)
		}
		if len(hashes) == len(nodes) && allEqual(hashes) {
			return
		}
		_ = history.Sleep(ctx, 100*time.Millisecond)
	}
	t.Fatalf("the node processes' states still differ after %s: %v", waitLong, hashes)
}

func allEqual(s []string) bool {
	for _, v := range s {
		if v != s[0] {
			return false
		}
	}
	return true
}

// nodeEnv selects node mode in a child process; its value is the node's
// procSpec as JSON.
const nodeEnv = "TIMEBOX_RAFT_CHAOS_NODE"

// procSpec configures a node process.
type procSpec struct {
	ID, Address, RPC, DataDir string
	Servers                   []Server
}

// procNode is a node process as the parent sees it.
type procNode struct {
	t       *testing.T
	spec    procSpec
	log     string
	backend *procBackend

	cmd    *exec.Cmd
	stdin  io.WriteCloser
	exited chan struct{}
}

// startProcs starts a cluster of node processes and waits until each
// serves calls. Cleanup kills whatever still runs.
func startProcs(t *testing.T) []*procNode {
	var servers []Server
	for i := range chaosNodes {
		servers = append(servers, Server{ID: fmt.Sprintf("n%d", i), Address: freeAddr(t)})
	}
	nodes := make([]*procNode, chaosNodes)
	dir := t.TempDir()
	for i := range nodes {
		spec := procSpec{
			ID: servers[i].ID, Address: servers[i].Address, RPC: freeAddr(t),
			DataDir: filepath.Join(dir, servers[i].ID), Servers: servers,
		}
		n := &procNode{
			t: t, spec: spec, log: filepath.Join(dir, spec.ID+".log"),
			backend: &procBackend{addr: spec.RPC},
		}
		nodes[i] = n
		t.Cleanup(func() {
			if n.cmd != nil {
				_ = n.kill()
			}
			_ = n.backend.Close()
			if t.Failed() {
				out, _ := os.ReadFile(n.log)
				t.Logf("node %s output:\n%s", spec.ID, out)
			}
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	require.NoError(t, restartProcs(ctx, nodes))
	return nodes
}

// start runs the node process; its output is appended to the node's log.
func (n *procNode) start() error {
	spec, err := json.Marshal(n.spec)
	if err != nil {
		return err
	}
	out, err := os.OpenFile(n.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer func() { _ = out.Close() }()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperNodeProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), nodeEnv+"="+string(spec))
	cmd.Stdout, cmd.Stderr = out, out
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start node %s: %w", n.spec.ID, err)
	}
	n.cmd, n.stdin, n.exited = cmd, stdin, make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(n.exited)
	}()
	return nil
}

// waitUp waits until the node serves calls (it does once Ready).
func (n *procNode) waitUp(ctx context.Context) error {
	return waitFor(ctx, fmt.Sprintf("node %s to answer", n.spec.ID), func() (bool, error) {
		var r NodeReply
		if n.backend.call(ctx, "Status", &NodeArgs{}, &r) == nil {
			return true, nil
		}
		select {
		case <-n.exited:
			return false, fmt.Errorf("node %s exited", n.spec.ID)
		default:
			return false, nil
		}
	})
}

// kill sends SIGKILL and waits for the process to end.
func (n *procNode) kill() error {
	if err := n.cmd.Process.Signal(syscall.SIGKILL); err != nil &&
		!errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill node %s: %w", n.spec.ID, err)
	}
	<-n.exited
	_ = n.stdin.Close()
	n.cmd = nil
	return nil
}

// stop closes the node's stdin, which makes it close its Persistence and
// exit, and waits for it.
func (n *procNode) stop() error {
	_ = n.stdin.Close()
	select {
	case <-n.exited:
	case <-time.After(waitLong):
		return fmt.Errorf("node %s did not stop", n.spec.ID)
	}
	ok := n.cmd.ProcessState.Success()
	n.cmd = nil
	if !ok {
		return fmt.Errorf("node %s failed; see %s", n.spec.ID, n.log)
	}
	return nil
}

// TestHelperNodeProcess is not a test: it is the node process that
// TestChaosProcessesKilled starts, and skips unless nodeEnv is set. It
// opens the node, serves NodeService once the node is Ready, and closes
// the node when its stdin closes.
func TestHelperNodeProcess(t *testing.T) {
	raw := os.Getenv(nodeEnv)
	if raw == "" {
		t.Skip("the node process of TestChaosProcessesKilled")
	}
	var spec procSpec
	require.NoError(t, json.Unmarshal([]byte(raw), &spec))
	tune := chaosTuning()
	p, err := NewPersistence(Config{
		LocalID: spec.ID, Address: spec.Address, DataDir: spec.DataDir,
		Servers: spec.Servers, tuning: &tune,
	})
	require.NoError(t, err)
	waitReady(t, p)
	srv := rpc.NewServer()
	require.NoError(t, srv.RegisterName("Node", &NodeService{p: p}))
	ln, err := net.Listen("tcp", spec.RPC)
	require.NoError(t, err)
	var conns sync.Map
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Store(c, struct{}{})
			wg.Go(func() { srv.ServeConn(c) })
		}
	})
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = ln.Close()
	conns.Range(func(c, _ any) bool {
		_ = c.(net.Conn).Close()
		return true
	})
	wg.Wait()
	require.NoError(t, p.Close())
}

// NodeArgs are the arguments of every NodeService call; each call reads
// the fields it needs. (net/rpc wants exported types; this is test code.)
type NodeArgs struct {
	Timeout  time.Duration
	Ticket   uint64 // FinishArchive: the TakeArchive it ends
	OK       bool   // FinishArchive: the handler succeeded
	Append   timebox.AppendRequest
	Snapshot timebox.SnapshotRequest
	ID       timebox.AggregateID
	From     int64
	Feed     timebox.FeedRequest // ReadFeed
	Lease    timebox.Lease       // the consumer partition calls
	Pos      timebox.Position    // CommitPartition, ResetConsumer
	Name     string              // ResetConsumer, DeleteConsumer
}

// NodeReply is the result of every NodeService call: Code classifies the
// error, if any, so the parent can rebuild one that errors.Is recognises.
type NodeReply struct {
	Code      string
	Msg       string
	Conflict  *timebox.VersionConflictError
	Events    []*timebox.Event
	Snapshot  *timebox.SnapshotRecord
	Leader    string
	State     string
	Hash      string
	Archive   *timebox.ArchiveRecord
	Ticket    uint64
	Claim     timebox.Claim
	Consumers []timebox.ConsumerInfo
}

const (
	codeNodeConflict = "conflict"
	codeNodeUnknown  = "unknown"
	codeNodeClosed   = "closed"
	codeNodeTimeout  = "timeout"
	codeNodeError    = "error"
)

func (r *NodeReply) set(err error) {
	if err == nil {
		return
	}
	r.Msg = err.Error()
	var vc *timebox.VersionConflictError
	switch {
	case errors.As(err, &vc):
		r.Code, r.Conflict = codeNodeConflict, vc
	case errors.Is(err, timebox.ErrUnknownOutcome):
		r.Code = codeNodeUnknown
	case errors.Is(err, timebox.ErrClosed):
		r.Code = codeNodeClosed
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		r.Code = codeNodeTimeout
	default:
		r.Code = codeNodeError
		for code, sentinel := range nodeSentinels {
			if errors.Is(err, sentinel) {
				r.Code = code
			}
		}
	}
}

func (r *NodeReply) err() error {
	switch r.Code {
	case "":
		return nil
	case codeNodeConflict:
		if r.Conflict.NewEvents == nil {
			r.Conflict.NewEvents = []*timebox.Event{}
		}
		return r.Conflict
	case codeNodeUnknown:
		return fmt.Errorf("%w: node: %s", timebox.ErrUnknownOutcome, r.Msg)
	case codeNodeClosed:
		return fmt.Errorf("%w: node: %s", timebox.ErrClosed, r.Msg)
	case codeNodeTimeout:
		return fmt.Errorf("%w: node: %s", context.DeadlineExceeded, r.Msg)
	}
	if sentinel, ok := nodeSentinels[r.Code]; ok {
		return fmt.Errorf("%w: node: %s", sentinel, r.Msg)
	}
	return fmt.Errorf("node: %s", r.Msg)
}

// NodeService serves a node's Backend calls to the parent process.
type NodeService struct {
	p *Persistence

	mu      sync.Mutex
	tickets uint64
	takes   map[uint64]*archiveTake
}

// archiveTake is a ConsumeArchive running on the node for the parent,
// whose handler waits for the parent's verdict (FinishArchive).
type archiveTake struct {
	verdict chan bool
	done    chan error
}

func (a *NodeArgs) context() (context.Context, context.CancelFunc) {
	d := a.Timeout
	if d <= 0 {
		d = waitLong
	}
	return context.WithTimeout(context.Background(), d)
}

func (s *NodeService) Append(a *NodeArgs, r *NodeReply) error {
	ctx, cancel := a.context()
	defer cancel()
	r.set(s.p.Append(ctx, a.Append))
	return nil
}

func (s *NodeService) SaveSnapshot(a *NodeArgs, r *NodeReply) error {
	ctx, cancel := a.context()
	defer cancel()
	r.set(s.p.SaveSnapshot(ctx, a.Snapshot))
	return nil
}

// LoadEvents reads once the node has caught up with the leader.
func (s *NodeService) LoadEvents(a *NodeArgs, r *NodeReply) error {
	ctx, cancel := a.context()
	defer cancel()
	err := s.p.retry(ctx, s.p.catchUp(ctx))
	if err == nil {
		r.Events, err = s.p.LoadEvents(ctx, a.ID, a.From)
	}
	r.set(err)
	return nil
}

func (s *NodeService) LoadSnapshot(a *NodeArgs, r *NodeReply) error {
	ctx, cancel := a.context()
	defer cancel()
	var err error
	r.Snapshot, err = s.p.LoadSnapshot(ctx, a.ID)
	r.set(err)
	return nil
}

func (s *NodeService) Archive(a *NodeArgs, r *NodeReply) error {
	ctx, cancel := a.context()
	defer cancel()
	r.set(s.p.Archive(ctx, a.ID))
	return nil
}

// TakeArchive runs ConsumeArchive and answers with the record once the
// handler has it; the handler then waits for FinishArchive (or gives up,
// releasing the lease, after the call's timeout).
func (s *NodeService) TakeArchive(a *NodeArgs, r *NodeReply) error {
	take := &archiveTake{verdict: make(chan bool, 1), done: make(chan error, 1)}
	got := make(chan *timebox.ArchiveRecord, 1)
	go func() {
		ctx, cancel := a.context()
		defer cancel()
		take.done <- s.p.ConsumeArchive(ctx, func(ctx context.Context, rec *timebox.ArchiveRecord) error {
			got <- rec
			select {
			case ok := <-take.verdict:
				if ok {
					return nil
				}
				return errors.New("parent handler failed")
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	select {
	case rec := <-got:
		s.mu.Lock()
		s.tickets++
		if s.takes == nil {
			s.takes = map[uint64]*archiveTake{}
		}
		s.takes[s.tickets] = take
		r.Archive, r.Ticket = rec, s.tickets
		s.mu.Unlock()
	case err := <-take.done:
		r.set(err)
	}
	return nil
}

// FinishArchive hands the parent handler's verdict to a TakeArchive and
// returns what its ConsumeArchive returned.
func (s *NodeService) FinishArchive(a *NodeArgs, r *NodeReply) error {
	s.mu.Lock()
	take := s.takes[a.Ticket]
	delete(s.takes, a.Ticket)
	s.mu.Unlock()
	if take == nil {
		r.set(fmt.Errorf("no archive take %d", a.Ticket))
		return nil
	}
	take.verdict <- a.OK
	err := <-take.done
	if !a.OK && err != nil && err.Error() == "parent handler failed" {
		err = nil
	}
	r.set(err)
	return nil
}

// Status reports the node's role and the leader it knows.
func (s *NodeService) Status(_ *NodeArgs, r *NodeReply) error {
	r.State, r.Leader = s.p.State().String(), s.p.Leader().ID
	r.set(nil)
	return nil
}

// Hash reports the state digest once the node has caught up.
func (s *NodeService) Hash(a *NodeArgs, r *NodeReply) error {
	ctx, cancel := a.context()
	defer cancel()
	err := s.p.retry(ctx, s.p.catchUp(ctx))
	if err == nil {
		r.Hash, err = stateHash(s.p)
	}
	r.set(err)
	return nil
}

// procBackend is the parent's Backend on a node process, over net/rpc. It
// dials again after the connection breaks.
type procBackend struct {
	addr string

	mu      sync.Mutex
	client  *rpc.Client
	clients []*rpc.Client
	closed  bool
}

var (
	_ timebox.Backend  = (*procBackend)(nil)
	_ timebox.Archiver = (*procBackend)(nil)
)

// errProcDown: the call could not be sent, so nothing was written.
var errProcDown = fmt.Errorf("%w: node process unreachable", timebox.ErrClosed)

func (b *procBackend) conn() (*rpc.Client, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, timebox.ErrClosed
	}
	if b.client != nil {
		return b.client, nil
	}
	c, err := net.DialTimeout("tcp", b.addr, time.Second)
	if err != nil {
		// %v: a net.Error in the chain would read as a lost reply.
		return nil, fmt.Errorf("%w: %v", errProcDown, err)
	}
	b.client = rpc.NewClient(c)
	b.clients = append(b.clients, b.client)
	return b.client, nil
}

// drop forgets a broken client; its connection is already failing, so
// its reader ends on its own (Close here could turn the error of calls
// still pending on it into ErrShutdown, which would read as not sent).
func (b *procBackend) drop(c *rpc.Client) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.client == c {
		b.client = nil
	}
}

// call runs method on the node. An error means the call or its reply was
// lost: errProcDown when it was not sent, ctx's error when ctx ended
// first, and ErrUnknownOutcome when the connection broke after sending.
// The node's own error is in r (r.err()).
func (b *procBackend) call(ctx context.Context, method string, a *NodeArgs, r *NodeReply) error {
	if dl, ok := ctx.Deadline(); ok && a.Timeout == 0 {
		a.Timeout = time.Until(dl)
	}
	c, err := b.conn()
	if err != nil {
		return err
	}
	call := c.Go("Node."+method, a, r, make(chan *rpc.Call, 1))
	select {
	case <-call.Done:
	case <-ctx.Done():
		// r belongs to the call from here on; the caller never reads it.
		return ctx.Err()
	}
	var se rpc.ServerError
	switch {
	case call.Error == nil:
		return nil
	case errors.As(call.Error, &se):
		// The node answered that it could not run the call.
		return fmt.Errorf("node: %w", call.Error)
	case errors.Is(call.Error, rpc.ErrShutdown):
		b.drop(c)
		return fmt.Errorf("%w: %v", errProcDown, call.Error)
	default:
		b.drop(c)
		return fmt.Errorf("%w: %w", timebox.ErrUnknownOutcome, call.Error)
	}
}

// do runs method and returns the node's error or the call's.
func (b *procBackend) do(ctx context.Context, method string, a *NodeArgs) (*NodeReply, error) {
	r := &NodeReply{}
	if err := b.call(ctx, method, a, r); err != nil {
		return nil, err
	}
	return r, r.err()
}

// Close closes every connection to the node.
func (b *procBackend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for _, c := range b.clients {
		_ = c.Close()
	}
	b.clients, b.client = nil, nil
	return nil
}

func (b *procBackend) Ready() <-chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}

func (b *procBackend) NewStore(cfg timebox.Config) (*timebox.Store, error) {
	return timebox.NewStore(b, cfg)
}

func (b *procBackend) Append(ctx context.Context, req timebox.AppendRequest) error {
	_, err := b.do(ctx, "Append", &NodeArgs{Append: req})
	return err
}

func (b *procBackend) SaveSnapshot(ctx context.Context, req timebox.SnapshotRequest) error {
	_, err := b.do(ctx, "SaveSnapshot", &NodeArgs{Snapshot: req})
	return err
}

func (b *procBackend) LoadEvents(
	ctx context.Context, id timebox.AggregateID, fromSeq int64,
) ([]*timebox.Event, error) {
	r, err := b.do(ctx, "LoadEvents", &NodeArgs{ID: id, From: fromSeq})
	if err != nil {
		return nil, err
	}
	return r.Events, nil
}

func (b *procBackend) LoadSnapshot(
	ctx context.Context, id timebox.AggregateID,
) (*timebox.SnapshotRecord, error) {
	r, err := b.do(ctx, "LoadSnapshot", &NodeArgs{ID: id})
	if err != nil {
		return nil, err
	}
	return r.Snapshot, nil
}

func (b *procBackend) Archive(ctx context.Context, id timebox.AggregateID) error {
	_, err := b.do(ctx, "Archive", &NodeArgs{ID: id})
	return err
}

// ConsumeArchive takes a record on the node, runs handler here, and sends
// the verdict back; the node acknowledges (or releases) the record.
func (b *procBackend) ConsumeArchive(ctx context.Context, handler timebox.ArchiveHandler) error {
	r, err := b.do(ctx, "TakeArchive", &NodeArgs{})
	if err != nil {
		return err
	}
	herr := handler(ctx, r.Archive)
	_, err = b.do(context.WithoutCancel(ctx), "FinishArchive",
		&NodeArgs{Ticket: r.Ticket, OK: herr == nil, Timeout: waitLong})
	if herr != nil {
		return herr
	}
	return err
}

// errNotServed: the process scenario's workload reads no index.
var errNotServed = errors.New("node process: index queries are not served")

func (b *procBackend) GetAggregateStatus(context.Context, timebox.AggregateID) (string, error) {
	return "", errNotServed
}

func (b *procBackend) ListAggregatesByStatus(context.Context, string) ([]timebox.StatusEntry, error) {
	return nil, errNotServed
}

func (b *procBackend) ListLabelValues(context.Context, string) ([]string, error) {
	return nil, errNotServed
}

func (b *procBackend) ListAggregatesByLabel(
	context.Context, string, string,
) ([]timebox.AggregateID, error) {
	return nil, errNotServed
}

func (b *procBackend) ListAggregates(context.Context, timebox.AggregateID) ([]timebox.AggregateID, error) {
	return nil, errNotServed
}
