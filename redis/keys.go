package redis

import (
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/codec"
)

// keys builds the store's key names; see DESIGN.md for the layout. Every
// key starts with base, which is "<Prefix>:" or "<Prefix>:{<Shard>}:".
// Encoded IDs, statuses and labels never hold '{', '}' or ':' inside a
// part, so no name can forge a hash tag or reach another key. The index
// lives in three store-wide sorted sets whose names the client knows, so
// every script can name in KEYS every key it may write.
type keys struct {
	base    string
	aggs    string // sorted set of live eids, lexical
	status  string // sorted set "<status>:<time><eid>", lexical
	label   string // sorted set "<label>:<value>:<eid>", lexical
	values  string // sorted set "<label>:<value>" held by some aggregate
	archive string
	feed    string // stream of every append's batch, IDs "0-<commit>"
	cons    string // sorted set of consumer names (encoded), lexical
	epochs  string // counter of the consumer epochs given (timebox.Claim)
}

func newKeys(cfg Config) keys {
	base := cfg.Prefix + ":"
	if cfg.Shard != "" {
		base += "{" + cfg.Shard + "}:"
	}
	return keys{
		base:    base,
		aggs:    base + "agg",
		status:  base + "status",
		label:   base + "label",
		values:  base + "lv",
		archive: base + "archive",
		feed:    base + "feed",
		cons:    base + "consumers",
		epochs:  base + "epochs",
	}
}

// aggregate holds the names of the per-aggregate keys of one ID.
type aggregate struct {
	eid    string // codec.EncodeID of the ID
	meta   string // hash: head, snapshot, status, labels
	events string // sorted set of encoded events scored by sequence
}

func (k keys) aggregate(id timebox.AggregateID) aggregate {
	eid := codec.EncodeID(id)
	return aggregate{
		eid:    eid,
		meta:   k.base + "m:" + eid,
		events: k.base + "e:" + eid,
	}
}

// consumer returns the name of the hash of the consumer whose encoded
// name (encodeName) is ename (see DESIGN.md, Feed).
func (k keys) consumer(ename string) string {
	return k.base + "c:" + ename
}

// lexRange returns the ZRANGE BYLEX bounds of the members that start with
// prefix; encoded names are ASCII, so "\xff" sorts after every member.
func lexRange(prefix string) *redis.ZRangeBy {
	return &redis.ZRangeBy{Min: "[" + prefix, Max: "[" + prefix + "\xff"}
}

// encodeName encodes a status, label or label value for a key: "" stays
// "", anything else is encoded as a one-part ID.
func encodeName(s string) string {
	if s == "" {
		return ""
	}
	return codec.EncodeID(timebox.AggregateID{timebox.ID(s)})
}

func decodeName(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	id, err := codec.DecodeID(s)
	if err != nil || len(id) != 1 {
		return "", fmt.Errorf("redis: malformed stored name %q", s)
	}
	return string(id[0]), nil
}

// statusTimeLen is the length of the time that starts a status member.
const statusTimeLen = 24

// statusTime returns the time part of a status member: the exact time as
// fixed-width hex (seconds offset by 2^63, then nanoseconds), so members
// of one status, all scored 0, sort lexically by time and then by encoded
// ID.
func statusTime(t time.Time) string {
	return fmt.Sprintf("%016x%08x", uint64(t.Unix())^1<<63, t.Nanosecond())
}

func parseStatusMember(m string) (timebox.StatusEntry, error) {
	if len(m) <= statusTimeLen {
		return timebox.StatusEntry{}, fmt.Errorf("redis: malformed status entry %q", m)
	}
	sec, err1 := strconv.ParseUint(m[:16], 16, 64)
	nsec, err2 := strconv.ParseUint(m[16:statusTimeLen], 16, 32)
	id, err3 := codec.DecodeID(m[statusTimeLen:])
	if err1 != nil || err2 != nil || err3 != nil || nsec >= 1e9 {
		return timebox.StatusEntry{}, fmt.Errorf("redis: malformed status entry %q", m)
	}
	return timebox.StatusEntry{
		ID:        id,
		Timestamp: time.Unix(int64(sec^1<<63), int64(nsec)).UTC(),
	}, nil
}
