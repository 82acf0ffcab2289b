package raft

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"time"

	"github.com/kode4food/timebox"
)

type (
	// Config configures one node of a Raft cluster. A zero field means
	// "use the default"; see DefaultConfig.
	Config struct {
		// LocalID names this node in the cluster. It must be unique and
		// stable across restarts.
		LocalID string

		// Address is the host:port this node listens on. It carries both
		// Raft traffic and the writes that followers forward to the
		// leader, and is the address other nodes dial.
		//
		// Without TLS, Address must be reachable only by the cluster's
		// own nodes: nothing on it is authenticated, so anyone who can
		// connect can append events and snapshots to the store, vote in
		// elections, replicate entries of their own making to followers
		// or install a snapshot that replaces a node's whole state.
		Address string

		// TLS, when set, secures every connection this node accepts or
		// dials on Address, Raft and forwarded writes alike, with mutual
		// TLS: each side presents a certificate and verifies the other's
		// before any byte of the protocol is read. The same Config serves
		// both sides. Its certificate (Certificates, or GetCertificate,
		// which also serves the dialling side when GetClientCertificate
		// is nil) must carry both the server and the client extended key
		// usage, and name the host of every address peers dial the node
		// at, unless ServerName is set. RootCAs, the cluster's CA,
		// verifies the dialled node, and the dialling one too unless
		// ClientCAs is set. ClientAuth is always
		// RequireAndVerifyClientCert, also on a Config returned by
		// GetConfigForClient. Certificates rotate without a restart
		// through GetCertificate, GetClientCertificate or
		// GetConfigForClient: each connection made afterwards uses the
		// new one. Validate returns ErrTLSCertificateRequired when either
		// side has no certificate, ErrTLSRootCAsRequired without RootCAs
		// and ErrTLSInsecure with InsecureSkipVerify. Every node of a
		// cluster must use TLS, or none.
		TLS *tls.Config

		// MaxForwardConns is the most forwarding connections this node,
		// as leader, serves at once: a connection holds a slot while its
		// request is read and answered, a request that finds none free
		// waits before its payload is read, and an idle connection holds
		// none. Zero means DefaultMaxForwardConns.
		MaxForwardConns int

		// DataDir holds the Raft log, the Raft snapshots and the state
		// machine's data. It is created when missing.
		DataDir string

		// LogTailSize is how many of the most recent Raft log entries are
		// kept in memory in front of the log store, from MinLogTailSize to
		// MaxLogTailSize (its slots are allocated up front).
		LogTailSize int

		// Servers is the initial voter set. It bootstraps the cluster
		// only when DataDir holds no Raft state yet, so every node may be
		// started with the same list; it must then include LocalID. With
		// no Servers, a node forms a single-node cluster by itself.
		Servers []Server

		// Publisher, when set, is called on this node once per committed
		// non-empty append, in commit order, with the appended events.
		// It is not called for entries replayed at restart or applied
		// while the node catches up before Ready. When the node, after
		// Ready, catches up by installing the leader's snapshot, it is
		// called once per aggregate the snapshot moved on, with that
		// aggregate's new events in sequence order (aggregates in key
		// order, not commit order; events the snapshot no longer holds,
		// trimmed or archived meanwhile, are not published). It runs on
		// its own goroutine, so a slow Publisher never stalls the state
		// machine.
		Publisher Publisher

		// ArchiveLease is how long an archive record handed to a consumer
		// stays hidden from the others: a consumer that dies (or whose
		// node does) without acknowledging it leaves it to be redelivered
		// once the lease ends. The lease is measured on the clocks of the
		// nodes the consumers call. Zero means DefaultArchiveLease.
		ArchiveLease time.Duration

		// Logger receives every line this node logs, hashicorp/raft's
		// included (its elections and peer chatter at Debug, its warnings
		// and errors as such). Nil means slog.Default() as of
		// NewPersistence.
		Logger *slog.Logger

		// tuning overrides Raft timings; tests use it to run fast.
		tuning *tuning
	}

	// Server is one voter of the cluster.
	Server struct {
		ID      string
		Address string
	}

	// Publisher receives the events of one committed append.
	Publisher func(...*timebox.Event)

	// tuning holds the Raft timings and thresholds. It is not part of
	// the public Config: the defaults suit production, and tests shorten
	// them.
	tuning struct {
		heartbeatTimeout   time.Duration
		electionTimeout    time.Duration
		leaderLeaseTimeout time.Duration
		commitTimeout      time.Duration
		snapshotInterval   time.Duration
		snapshotThreshold  uint64
		trailingLogs       uint64
		dialTimeout        time.Duration
		leaderWait         time.Duration

		// wrapConn, when set, wraps every connection the node dials or
		// accepts; tests use it to partition the node.
		wrapConn func(net.Conn) net.Conn

		// handshakeTimeout bounds an accepted connection's TLS handshake
		// and protocol byte, and how long a forwarded request may stall
		// while its frame is read or its answer written.
		handshakeTimeout time.Duration
	}
)

// Defaults for Config.
const (
	DefaultLogTailSize     = 20480
	DefaultMaxForwardConns = 256

	// MinLogTailSize is the smallest LogTailSize accepted.
	MinLogTailSize = 64
	// MaxLogTailSize is the largest LogTailSize accepted.
	MaxLogTailSize = 1 << 22

	// DefaultArchiveLease is the default ArchiveLease.
	DefaultArchiveLease = 30 * time.Second
)

// Errors returned by Config.Validate and NewPersistence. Each is a
// configuration mistake: fix the Config; retrying does not help.
var (
	ErrLocalIDRequired             = errors.New("raft: local ID is required")
	ErrDataDirRequired             = errors.New("raft: data directory is required")
	ErrAddressRequired             = errors.New("raft: address is required")
	ErrInvalidAddress              = errors.New("raft: address must be host:port")
	ErrBootstrapMissingLocalServer = errors.New("raft: servers must include the local ID")
	ErrInvalidServer               = errors.New("raft: every server needs an ID and a host:port address")
	ErrLogTailSizeTooSmall         = errors.New("raft: log tail size is too small")
	ErrLogTailSizeTooLarge         = errors.New("raft: log tail size is too large")
	ErrInvalidArchiveLease         = errors.New("raft: archive lease must not be negative")
	ErrInvalidMaxForwardConns      = errors.New("raft: max forward conns must not be negative")
	ErrTLSCertificateRequired      = errors.New("raft: TLS needs a certificate for both sides")
	ErrTLSRootCAsRequired          = errors.New("raft: TLS needs RootCAs, the cluster's CA")
	ErrTLSInsecure                 = errors.New("raft: TLS must verify peers (InsecureSkipVerify)")
)

// DefaultConfig returns the Config with every default applied. LocalID,
// Address and DataDir have no default.
func DefaultConfig() Config {
	return Config{
		LogTailSize:     DefaultLogTailSize,
		MaxForwardConns: DefaultMaxForwardConns,
		ArchiveLease:    DefaultArchiveLease,
	}
}

// With returns c with every non-zero field of other laid over it.
func (c Config) With(other Config) Config {
	if other.LocalID != "" {
		c.LocalID = other.LocalID
	}
	if other.Address != "" {
		c.Address = other.Address
	}
	if other.DataDir != "" {
		c.DataDir = other.DataDir
	}
	if other.LogTailSize != 0 {
		c.LogTailSize = other.LogTailSize
	}
	if other.Servers != nil {
		c.Servers = append([]Server(nil), other.Servers...)
	}
	if other.Publisher != nil {
		c.Publisher = other.Publisher
	}
	if other.ArchiveLease != 0 {
		c.ArchiveLease = other.ArchiveLease
	}
	if other.Logger != nil {
		c.Logger = other.Logger
	}
	if other.TLS != nil {
		c.TLS = other.TLS
	}
	if other.MaxForwardConns != 0 {
		c.MaxForwardConns = other.MaxForwardConns
	}
	if other.tuning != nil {
		c.tuning = other.tuning
	}
	return c
}

// Validate returns, checked in this order, ErrLocalIDRequired,
// ErrAddressRequired, ErrInvalidAddress, ErrDataDirRequired,
// ErrLogTailSizeTooSmall (below MinLogTailSize), ErrLogTailSizeTooLarge
// (above MaxLogTailSize),
// ErrInvalidMaxForwardConns (negative), ErrInvalidArchiveLease
// (negative), ErrTLSCertificateRequired, ErrTLSRootCAsRequired or
// ErrTLSInsecure (see Config.TLS), ErrInvalidServer or
// ErrBootstrapMissingLocalServer, or nil.
func (c Config) Validate() error {
	switch {
	case c.LocalID == "":
		return ErrLocalIDRequired
	case c.Address == "":
		return ErrAddressRequired
	case !validAddress(c.Address):
		return ErrInvalidAddress
	case c.DataDir == "":
		return ErrDataDirRequired
	case c.LogTailSize < MinLogTailSize:
		return ErrLogTailSizeTooSmall
	case c.LogTailSize > MaxLogTailSize:
		return ErrLogTailSizeTooLarge
	case c.MaxForwardConns < 0:
		return ErrInvalidMaxForwardConns
	case c.ArchiveLease < 0:
		return ErrInvalidArchiveLease
	}
	if err := validateTLS(c.TLS); err != nil {
		return err
	}
	return c.validateServers()
}

func (c Config) validateServers() error {
	if len(c.Servers) == 0 {
		return nil
	}
	local := false
	for _, s := range c.Servers {
		if s.ID == "" || !validAddress(s.Address) {
			return ErrInvalidServer
		}
		local = local || s.ID == c.LocalID
	}
	if !local {
		return ErrBootstrapMissingLocalServer
	}
	return nil
}

func validAddress(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	return err == nil && port != ""
}

func (c Config) timings() tuning {
	if c.tuning != nil {
		return *c.tuning
	}
	return defaultTuning()
}

func defaultTuning() tuning {
	return tuning{
		heartbeatTimeout:   time.Second,
		electionTimeout:    time.Second,
		leaderLeaseTimeout: 500 * time.Millisecond,
		// Followers learn of a commit on the next AppendEntries; a short
		// CommitTimeout keeps forwarded writes quick when traffic is light.
		commitTimeout:     5 * time.Millisecond,
		snapshotInterval:  2 * time.Minute,
		snapshotThreshold: 8192,
		trailingLogs:      10240,
		dialTimeout:       5 * time.Second,
		leaderWait:        30 * time.Second,
		handshakeTimeout:  10 * time.Second,
	}
}
