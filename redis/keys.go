package redis

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/codec"
)

// keys builds the store's key names; see DESIGN.md for the layout. Every
// key starts with base, which is "<Prefix>:" or "<Prefix>:{<Shard>}:".
// Encoded IDs, statuses and labels never hold '{', '}' or ':' inside a
// part, so no name can forge a hash tag or reach another key.
type keys struct {
	base    string
	aggs    string
	archive string
}

func newKeys(cfg Config) keys {
	base := cfg.Prefix + ":"
	if cfg.Shard != "" {
		base += "{" + cfg.Shard + "}:"
	}
	return keys{base: base, aggs: base + "agg", archive: base + "archive"}
}

// aggregate holds the names of the per-aggregate keys of one ID.
type aggregate struct {
	eid    string // codec.EncodeID of the ID
	meta   string // hash: head, snapshot, status
	events string // sorted set of encoded events scored by sequence
	labels string // hash: encoded label -> encoded value
}

func (k keys) aggregate(id timebox.AggregateID) aggregate {
	eid := codec.EncodeID(id)
	return aggregate{
		eid:    eid,
		meta:   k.base + "m:" + eid,
		events: k.base + "e:" + eid,
		labels: k.base + "l:" + eid,
	}
}

func (k keys) status(encStatus string) string {
	return k.base + "s:" + encStatus
}

func (k keys) labelValues(encLabel string) string {
	return k.base + "lv:" + encLabel
}

func (k keys) labelAggregates(encLabel, encValue string) string {
	return k.base + "la:" + encLabel + ":" + encValue
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

// statusMember returns the sorted-set member and score for an aggregate in
// a status since t. The score (float seconds) orders members roughly; the
// member starts with the exact time as fixed-width hex (seconds offset by
// 2^63, then nanoseconds), so members with equal scores sort exactly by
// time and then by encoded ID.
func statusMember(t time.Time, eid string) (member, score string) {
	sec := uint64(t.Unix()) ^ 1<<63
	member = fmt.Sprintf("%016x%08x%s", sec, t.Nanosecond(), eid)
	f := float64(t.Unix()) + float64(t.Nanosecond())/1e9
	if math.IsInf(f, 0) || math.IsNaN(f) {
		f = 0
	}
	return member, strconv.FormatFloat(f, 'g', -1, 64)
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
