package redis

import (
	"bytes"
	"context"
	"io"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// feedEntry is one entry of the feed stream as read: its stream ID, its
// encoded aggregate ID (field i) and its framed batch (field b), nil for
// a field it lacks.
type feedEntry struct {
	id         string
	eid, batch []byte
}

// rawWriter is the part of go-redis's clients (*redis.Client and
// *redis.ClusterClient, but not the UniversalClient interface) that
// streams a reply's RESP bytes into an io.Writer.
type rawWriter interface {
	DoRawWriteTo(ctx context.Context, w io.Writer, args ...any) *redis.RawWriteToCmd
}

var (
	_ rawWriter = (*redis.Client)(nil)
	_ rawWriter = (*redis.ClusterClient)(nil)
)

// Bounds of the reply buffers kept for reuse: at most keptReplies, of at
// most keptReplySize bytes each.
const (
	keptReplies   = 4
	keptReplySize = 4 << 20
)

// xrange reads up to count feed entries from start (an XRANGE bound). The
// reply is taken as RESP bytes into a reused buffer rather than parsed by
// go-redis, which would copy each field into a string of its own, in a
// map per entry, only for codec.DecodeEvents to copy the records again:
// the entries point into the buffer, which the caller passes to release
// once it is done with them. go-redis neither retries a read taken this
// way nor follows a cluster's MOVED or ASK reply to it, so when it fails
// or the reply is not a list of entries (an error reply) the read is sent
// again as a plain XRANGE, which does both and returns any error as other
// reads do (its entries are then copies, and the buffer nil), as is every
// read of a client that cannot stream a reply's bytes.
func (p *Persistence) xrange(
	ctx context.Context, start string, count int,
) ([]feedEntry, *bytes.Buffer, error) {
	if rw, ok := p.client.(rawWriter); ok {
		buf := p.replyBuffer()
		args := []any{"XRANGE", p.keys.feed, start, "+", "COUNT", count}
		if err := rw.DoRawWriteTo(ctx, buf, args...).Err(); err == nil {
			if entries, ok := parseXRange(buf.Bytes()); ok {
				return entries, buf, nil
			}
		}
		p.release(buf)
	}
	msgs, err := p.client.XRangeN(ctx, p.keys.feed, start, "+", int64(count)).Result()
	if err != nil {
		return nil, nil, err
	}
	return msgEntries(msgs), nil, nil
}

// replyBuffer returns an empty buffer, one of p.replies if there is one.
// The buffers are kept in a channel rather than a sync.Pool, which every
// garbage collection empties: a catch-up read collects garbage often, and
// a buffer grown anew for every page costs more than the page's decoding.
func (p *Persistence) replyBuffer() *bytes.Buffer {
	select {
	case b := <-p.replies:
		b.Reset()
		return b
	default:
		return new(bytes.Buffer)
	}
}

// release keeps buf (nil: none) in p.replies for reuse, unless it grew
// too large or keptReplies are kept already.
func (p *Persistence) release(buf *bytes.Buffer) {
	if buf == nil || buf.Cap() > keptReplySize {
		return
	}
	select {
	case p.replies <- buf:
	default:
	}
}

// msgEntries converts entries parsed by go-redis (XREAD's, or those of an
// XRANGE that xrange sent again) to feedEntry values.
func msgEntries(msgs []redis.XMessage) []feedEntry {
	res := make([]feedEntry, len(msgs))
	field := func(m redis.XMessage, name string) []byte {
		if s, ok := m.Values[name].(string); ok {
			return []byte(s)
		}
		return nil
	}
	for i, m := range msgs {
		res[i] = feedEntry{m.ID, field(m, "i"), field(m, "b")}
	}
	return res
}

// parseXRange parses an XRANGE reply in RESP2: an array of entries, each
// an array of the stream ID and an array of field names and values. ok is
// false for any other reply.
func parseXRange(b []byte) (entries []feedEntry, ok bool) {
	r := respReader{b: b}
	n := r.array()
	res := make([]feedEntry, 0, max(n, 0))
	for i := 0; i < n && !r.bad; i++ {
		if r.array() != 2 {
			r.bad = true
		}
		e := feedEntry{id: string(r.bulk())}
		for range r.array() / 2 {
			switch name, val := r.bulk(), r.bulk(); string(name) {
			case "i":
				e.eid = val
			case "b":
				e.batch = val
			}
		}
		res = append(res, e)
	}
	return res, !r.bad && len(r.b) == 0
}

// respReader reads RESP2 arrays and bulk strings; bad is set by anything
// else.
type respReader struct {
	b   []byte
	bad bool
}

// array reads an array's header and returns its length.
func (r *respReader) array() int {
	return r.header('*')
}

// bulk reads a bulk string; a null one is nil.
func (r *respReader) bulk() []byte {
	n := r.header('$')
	if r.bad || n < 0 {
		return nil
	}
	if n+2 > len(r.b) || r.b[n] != '\r' || r.b[n+1] != '\n' {
		r.bad = true
		return nil
	}
	s := r.b[:n:n]
	r.b = r.b[n+2:]
	return s
}

// header reads a line "<kind><length>\r\n" and returns the length.
func (r *respReader) header(kind byte) int {
	i := bytes.IndexByte(r.b, '\n')
	if r.bad || i < 2 || r.b[0] != kind || r.b[i-1] != '\r' {
		r.bad = true
		return 0
	}
	n, err := strconv.Atoi(string(r.b[1 : i-1]))
	if err != nil || n < -1 {
		r.bad = true
		return 0
	}
	r.b = r.b[i+1:]
	return n
}
