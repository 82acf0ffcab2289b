package redis

import (
	"bytes"
	"context"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
)

// parseXRange reads the server's own XRANGE replies as go-redis does,
// entries lacking a field or holding others included.
func TestParseXRangeServerReply(t *testing.T) {
	p := newPersistence(t, Config{})
	ctx := context.Background()
	for _, vals := range [][]any{
		{"i", "a", "b", "1:x"},
		{"b", "", "i", "b:c"}, // empty value, other order
		{"i", "only"},
		{"x", "y", "b", "2:zz", "i", "c", "z", ""},
	} {
		require.NoError(t, p.client.XAdd(ctx, &redis.XAddArgs{
			Stream: p.keys.feed, ID: "0-*", Values: vals,
		}).Err())
	}
	want, err := p.client.XRange(ctx, p.keys.feed, "-", "+").Result()
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, p.client.(rawWriter).DoRawWriteTo(ctx, &buf,
		"XRANGE", p.keys.feed, "-", "+").Err())
	got, ok := parseXRange(buf.Bytes())
	require.True(t, ok)
	require.Equal(t, msgEntries(want), got)

	buf.Reset()
	require.NoError(t, p.client.(rawWriter).DoRawWriteTo(ctx, &buf,
		"XRANGE", p.keys.feed, "(0-4", "+").Err())
	got, ok = parseXRange(buf.Bytes())
	require.True(t, ok)
	require.Empty(t, got)
}

// Anything but a list of entries is refused, so that xrange sends the
// read again through go-redis.
func TestParseXRangeRefuses(t *testing.T) {
	entry := "*2\r\n$3\r\n0-1\r\n*2\r\n$1\r\ni\r\n$1\r\na\r\n"
	got, ok := parseXRange([]byte("*1\r\n" + entry))
	require.True(t, ok)
	require.Equal(t, []feedEntry{{id: "0-1", eid: []byte("a")}}, got)
	for _, reply := range []string{
		"",
		"-MOVED 1194 127.0.0.1:7001\r\n",
		"-ASK 1194 127.0.0.1:7001\r\n",
		"$3\r\nabc\r\n",
		"*2\r\n" + entry,                        // one entry short
		"*1\r\n" + entry + "x",                  // trailing bytes
		"*1\r\n*3\r\n$3\r\n0-1\r\n*0\r\n:1\r\n", // three elements
		"*1\r\n*2\r\n$3\r\n0-1\r\n*2\r\n$1\r\ni\r\n$5\r\na\r\n",  // short bulk
		"*1\r\n*2\r\n$3\r\n0-1\r\n*2\r\n$1\r\ni\r\n$1\r\nab\r\n", // long bulk
		"*1\r\n*2\r\n$x\r\n0-1\r\n*0\r\n",                        // bad length
		"*1\n",
	} {
		_, ok := parseXRange([]byte(reply))
		require.False(t, ok, "%q", reply)
	}
}

// A server error reply to the raw XRANGE is returned as go-redis returns
// it to a plain one: the server's reply, not ErrUnavailable.
func TestFeedErrorReply(t *testing.T) {
	p := newPersistence(t, Config{})
	require.NoError(t, p.client.Set(context.Background(), p.keys.feed, "x", 0).Err())
	_, err := p.ReadFeed(context.Background(), timebox.FeedRequest{Limit: 10})
	require.ErrorContains(t, err, "WRONGTYPE")
	require.NotErrorIs(t, err, timebox.ErrUnavailable)
}

// Reply buffers are reused, and one that grew too large is dropped.
func TestReplyBuffers(t *testing.T) {
	p := newPersistence(t, Config{})
	b := p.replyBuffer()
	b.WriteString("x")
	p.release(b)
	require.Same(t, b, p.replyBuffer())
	b.Grow(keptReplySize + 1)
	p.release(b)
	require.NotSame(t, b, p.replyBuffer())
	for range keptReplies + 1 {
		p.release(new(bytes.Buffer))
	}
	require.Len(t, p.replies, keptReplies)
	p.release(nil)
}

// unframe splits strings and byte slices alike, and refuses a frame that
// is not "<length>:<bytes>".
func TestUnframe(t *testing.T) {
	recs, err := unframe("1:a0:3:b:c")
	require.NoError(t, err)
	require.Equal(t, []string{"a", "", "b:c"}, recs)
	brecs, err := unframe([]byte("1:a0:3:b:c"))
	require.NoError(t, err)
	require.Equal(t, [][]byte{[]byte("a"), {}, []byte("b:c")}, brecs)
	recs, err = unframe("")
	require.NoError(t, err)
	require.Empty(t, recs)
	for _, s := range []string{
		"a", "1", "1a", ":a", "-1:a", "+1:a", "2:a", "1:a2:b",
		"99999999999999999999:a",
	} {
		_, err := unframe(s)
		require.Error(t, err, "%q", s)
		_, err = unframe([]byte(s))
		require.Error(t, err, "%q", s)
	}
}
