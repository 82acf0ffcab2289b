// Package raft is a Timebox backend replicated by Raft consensus
// (github.com/hashicorp/raft), so several service instances share one
// store with no external database.
//
// Each instance runs a node: [NewPersistence] opens its DataDir, listens
// on its Address and joins the cluster named by Servers (or, with none,
// forms a single-node cluster). Every node accepts every call. Writes go
// through the leader — a follower forwards them over the same Address —
// and are checked against the expected sequence inside the replicated
// state machine, so exactly one of several racing appends wins. A call
// returns once the write is applied on the node that took it, so a node's
// reads, which it serves from its own copy, reflect every write it
// acknowledged.
//
//	p, err := raft.NewPersistence(raft.Config{
//		LocalID: "a",
//		Address: "10.0.0.1:7000",
//		DataDir: "/var/lib/orders",
//		Servers: []raft.Server{
//			{ID: "a", Address: "10.0.0.1:7000"},
//			{ID: "b", Address: "10.0.0.2:7000"},
//			{ID: "c", Address: "10.0.0.3:7000"},
//		},
//	})
//	store, err := p.NewStore(timebox.Config{})
//
// Address is not authenticated unless [Config.TLS] is set. Without TLS it
// must be reachable only by the cluster's own nodes: anyone who can connect
// can append to the store, vote and lead, and replace a node's state with
// a snapshot of their own. With TLS every connection is mutual TLS, each
// node presenting a certificate of the cluster's CA and verifying its
// peer's before any protocol byte is read.
//
// The store's feed (timebox.Store.ReadAll, Subscribe, Consume) is part
// of the replicated state: an event's Position is the Raft log index of
// its append and its place in it, every node serves the feed from its own
// applied state, gap-free across restarts and snapshot installs, and
// durable consumers' checkpoints and leases are committed through the
// leader like appends. Trimming and archiving leave the feed alone.
//
// [Config.Publisher] hands every committed batch to the application on
// every node, in commit order. Archiving is replicated: [Persistence.Archive]
// moves an aggregate into an archive record in the state machine, and a
// consumer on any node leases a record ([Config.ArchiveLease]) through the
// leader, so each record goes to one consumer at a time and an
// acknowledgement removes it on every node. [Persistence.Err] reports the
// node's disk health. DESIGN.md in this directory describes the command
// encoding, the state file and what a crash leaves behind.
package raft
