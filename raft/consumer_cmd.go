package raft

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/codec"
)

// Durable consumers live in the replicated state, so every node holds the
// same checkpoints and leases and lists them locally:
//
//	consumers       lp(name)              -> partitions epoch (uvarints)
//	consumer_parts  lp(name) partition(4 BE) -> commit offset lp(owner) time(expires)
//
// A consumer's epoch (timebox.Claim) is the log index of the command that
// created or last reset it: no other command has that index, so no other
// incarnation of the consumer has that epoch, and every node that applies
// the command stores the same one. A record stored before epochs existed
// has none and reads as epoch 0, which no command's index is; a reset, or
// a delete and a new claim, give it a real one.
//
// Five commands change them, each applied atomically; they share one
// encoding, lp(name) partition partitions lp(owner) time(now) ttl commit
// offset, whatever fields the op uses. now is the proposer's clock, so
// every node decides a lease the same way.
//
//	opClaim    create the consumer if missing, with a new epoch; lease
//	  the partition to owner until now+ttl if free, expired at now, or
//	  owner's already; answer its checkpoint and the consumer's epoch
//	opCommit   set the checkpoint and lease until now+ttl, if owner holds
//	  the lease
//	opUnlease  end owner's lease, keeping the checkpoint
//	opReset    every checkpoint to the position, every lease ended, a
//	  new epoch
//	opDelete   remove the consumer
const (
	opClaim   byte = 7
	opCommit  byte = 8
	opUnlease byte = 9
	opReset   byte = 10
	opDelete  byte = 11
)

var (
	bucketConsumers = []byte("consumers")
	bucketParts     = []byte("consumer_parts")
)

type (
	// consumerCmd is a consumer command as it travels through the log.
	consumerCmd struct {
		op         byte
		name       string
		partition  int
		partitions int
		owner      string
		now        time.Time
		ttl        time.Duration
		pos        timebox.Position
	}

	// consumerResult is a consumer command's outcome: the partition's
	// checkpoint and the consumer's epoch for a claim, and nil or one of
	// the consumer errors. It also answers an IfHead snapshot that was not
	// stored, with timebox.ErrSnapshotSkipped.
	consumerResult struct {
		claim timebox.Claim
		err   error
	}

	// partState is one stored partition.
	partState struct {
		checkpoint timebox.Position
		owner      string
		expires    time.Time
	}
)

// consumerErrs numbers the errors a consumerResult may carry on the wire
// (forward.go); 0 is success. New errors go at the end.
var consumerErrs = []error{
	nil, timebox.ErrLeaseHeld, timebox.ErrLeaseLost,
	timebox.ErrConsumerNotFound, timebox.ErrPartitionMismatch,
	timebox.ErrSnapshotSkipped,
}

func encodeConsumer(c consumerCmd) []byte {
	buf := codec.AppendString([]byte{commandVersion, c.op}, c.name)
	buf = binary.AppendUvarint(buf, uint64(c.partition))
	buf = binary.AppendUvarint(buf, uint64(c.partitions))
	buf = codec.AppendString(buf, c.owner)
	buf = codec.AppendTime(buf, c.now)
	buf = binary.AppendUvarint(buf, uint64(c.ttl))
	buf = binary.AppendUvarint(buf, c.pos.Commit)
	return binary.AppendUvarint(buf, c.pos.Offset)
}

func decodeConsumer(op byte, b []byte) (consumerCmd, error) {
	r := codec.NewReader(b[2:])
	c := consumerCmd{op: op, name: string(r.Bytes())}
	c.partition, c.partitions = int(r.Uvarint()), int(r.Uvarint())
	c.owner, c.now = string(r.Bytes()), r.Time()
	c.ttl = time.Duration(r.Uvarint())
	c.pos = timebox.Position{Commit: r.Uvarint(), Offset: r.Uvarint()}
	leased := op == opClaim || op == opCommit
	if r.Bad() || r.Len() != 0 || c.partitions > 1<<16 || leased && c.partition >= c.partitions {
		return c, fmt.Errorf("%w: consumer", errMalformedCommand)
	}
	return c, nil
}

func encodeResult(r *consumerResult) []byte {
	var code byte
	for i, err := range consumerErrs[1:] {
		if errors.Is(r.err, err) {
			code = byte(i + 1)
		}
	}
	buf := []byte{code}
	buf = binary.AppendUvarint(buf, r.claim.Checkpoint.Commit)
	buf = binary.AppendUvarint(buf, r.claim.Checkpoint.Offset)
	return binary.AppendUvarint(buf, r.claim.Epoch)
}

func decodeResult(b []byte) (*consumerResult, error) {
	if len(b) == 0 || int(b[0]) >= len(consumerErrs) {
		return nil, errMalformedCommand
	}
	r := codec.NewReader(b[1:])
	res := &consumerResult{err: consumerErrs[b[0]]}
	res.claim.Checkpoint = timebox.Position{Commit: r.Uvarint(), Offset: r.Uvarint()}
	res.claim.Epoch = r.Uvarint()
	if r.Bad() || r.Len() != 0 {
		return nil, errMalformedCommand
	}
	return res, nil
}

// applyConsumerOp applies one consumer command, the one at log index idx;
// a malformed one is a response, not an error.
func applyConsumerOp(tx *bbolt.Tx, idx uint64, op byte, data []byte) (any, error) {
	c, err := decodeConsumer(op, data)
	if err != nil {
		return err, nil
	}
	n, epoch, exists := getConsumer(tx, c.name)
	switch op {
	case opClaim:
		return claimPartition(tx, idx, c, n, epoch, exists)
	case opCommit:
		part, ok := getPart(tx, c.name, c.partition)
		if !exists || !ok || c.partition >= n || part.owner != c.owner {
			return &consumerResult{err: timebox.ErrLeaseLost}, nil
		}
		part.checkpoint, part.expires = c.pos, c.now.Add(c.ttl)
		return &consumerResult{}, putPart(tx, c.name, c.partition, part)
	case opUnlease:
		part, ok := getPart(tx, c.name, c.partition)
		if !ok || part.owner != c.owner {
			return &consumerResult{}, nil
		}
		part.owner, part.expires = "", time.Time{}
		return &consumerResult{}, putPart(tx, c.name, c.partition, part)
	case opReset:
		if !exists {
			return &consumerResult{err: timebox.ErrConsumerNotFound}, nil
		}
		for i := range n {
			if err := putPart(tx, c.name, i, partState{checkpoint: c.pos}); err != nil {
				return nil, err
			}
		}
		return &consumerResult{}, putConsumer(tx, c.name, n, idx)
	default: // opDelete
		if !exists {
			return &consumerResult{err: timebox.ErrConsumerNotFound}, nil
		}
		for i := range n {
			if err := tx.Bucket(bucketParts).Delete(partKey(c.name, i)); err != nil {
				return nil, err
			}
		}
		return &consumerResult{}, tx.Bucket(bucketConsumers).Delete(consumerKey(c.name))
	}
}

// claimPartition applies opClaim, the command at log index idx, to a
// consumer of n partitions and the epoch given, which exists or not; a
// consumer it creates gets epoch idx.
func claimPartition(
	tx *bbolt.Tx, idx uint64, c consumerCmd, n int, epoch uint64, exists bool,
) (any, error) {
	switch {
	case !exists:
		epoch = idx
		if err := putConsumer(tx, c.name, c.partitions, epoch); err != nil {
			return nil, err
		}
		for i := range c.partitions {
			if err := putPart(tx, c.name, i, partState{}); err != nil {
				return nil, err
			}
		}
	case n != c.partitions:
		return &consumerResult{err: timebox.ErrPartitionMismatch}, nil
	}
	part, _ := getPart(tx, c.name, c.partition)
	if part.owner != "" && part.owner != c.owner && part.expires.After(c.now) {
		return &consumerResult{err: timebox.ErrLeaseHeld}, nil
	}
	part.owner, part.expires = c.owner, c.now.Add(c.ttl)
	if err := putPart(tx, c.name, c.partition, part); err != nil {
		return nil, err
	}
	return &consumerResult{claim: timebox.Claim{Checkpoint: part.checkpoint, Epoch: epoch}}, nil
}

func consumerKey(name string) []byte {
	return codec.AppendString(nil, name)
}

func partKey(name string, partition int) []byte {
	return binary.BigEndian.AppendUint32(consumerKey(name), uint32(partition))
}

// getConsumer returns the partition count and epoch of consumer name;
// the epoch is 0 for a record stored before epochs existed.
func getConsumer(tx *bbolt.Tx, name string) (int, uint64, bool) {
	v := tx.Bucket(bucketConsumers).Get(consumerKey(name))
	if v == nil {
		return 0, 0, false
	}
	r := codec.NewReader(v)
	n := r.Uvarint()
	var epoch uint64
	if r.Len() > 0 {
		epoch = r.Uvarint()
	}
	return int(n), epoch, true
}

// putConsumer stores consumer name's partition count and epoch.
func putConsumer(tx *bbolt.Tx, name string, n int, epoch uint64) error {
	v := binary.AppendUvarint(binary.AppendUvarint(nil, uint64(n)), epoch)
	return tx.Bucket(bucketConsumers).Put(consumerKey(name), v)
}

func getPart(tx *bbolt.Tx, name string, partition int) (partState, bool) {
	return decodePart(tx.Bucket(bucketParts).Get(partKey(name, partition)))
}

func decodePart(v []byte) (partState, bool) {
	if v == nil {
		return partState{}, false
	}
	r := codec.NewReader(v)
	s := partState{checkpoint: timebox.Position{Commit: r.Uvarint(), Offset: r.Uvarint()}}
	s.owner, s.expires = string(r.Bytes()), r.Time()
	return s, !r.Bad()
}

func putPart(tx *bbolt.Tx, name string, partition int, s partState) error {
	buf := binary.AppendUvarint(nil, s.checkpoint.Commit)
	buf = binary.AppendUvarint(buf, s.checkpoint.Offset)
	buf = codec.AppendString(buf, s.owner)
	buf = codec.AppendTime(buf, s.expires)
	return tx.Bucket(bucketParts).Put(partKey(name, partition), buf)
}

// listConsumers reads every consumer with its partitions.
func listConsumers(tx *bbolt.Tx) ([]timebox.ConsumerInfo, error) {
	var res []timebox.ConsumerInfo
	parts := tx.Bucket(bucketParts).Cursor()
	err := tx.Bucket(bucketConsumers).ForEach(func(k, _ []byte) error {
		name := string(codec.NewReader(k).Bytes())
		info := timebox.ConsumerInfo{Name: name}
		for pk, v := parts.Seek(k); bytes.HasPrefix(pk, k) && len(pk) == len(k)+4; pk, v = parts.Next() {
			s, ok := decodePart(v)
			if !ok {
				return fmt.Errorf("raft: consumer %q: malformed partition", name)
			}
			info.Partitions = append(info.Partitions, timebox.PartitionInfo{
				Partition:  int(binary.BigEndian.Uint32(pk[len(k):])),
				Checkpoint: s.checkpoint,
				Owner:      s.owner,
				Expires:    s.expires,
			})
		}
		res = append(res, info)
		return nil
	})
	return res, err
}
