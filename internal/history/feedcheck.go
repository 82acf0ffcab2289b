package history

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
)

// IncarnationEnd says how one Consume call of a FeedLoad ended.
type IncarnationEnd uint8

// How an incarnation ended.
const (
	// Running: it has not ended (yet).
	Running IncarnationEnd = iota
	// Stopped: its context was cancelled and Consume returned cleanly.
	Stopped
	// Abandoned: its handler stalled past the lease and another
	// incarnation took the partition over; only then was it cancelled.
	Abandoned
	// Crashed: Consume returned an error of its own.
	Crashed
)

var endNames = map[IncarnationEnd]string{
	Running: "running", Stopped: "stopped", Abandoned: "abandoned",
	Crashed: "crashed",
}

// String implements fmt.Stringer.
func (e IncarnationEnd) String() string { return endNames[e] }

// Incarnation is one Consume call of a FeedLoad's consumer.
type Incarnation struct {
	// Store is the index of the store it ran on.
	Store int
	// Owner is its lease owner name.
	Owner string
	// End says how it ended; Err is Consume's error when it Crashed.
	End IncarnationEnd
	Err string
}

// Handling is one call of the consumer's handler that returned nil.
type Handling struct {
	// Incarnation is the index of the incarnation that handled the event.
	Incarnation int
	// Position, Aggregate, Sequence and EventID identify the event.
	Position  timebox.Position
	Aggregate string
	Sequence  int64
	EventID   string
	// Key is the event's key ("batch.index") when a Recorder wrote it,
	// and "" otherwise.
	Key string
	// Lag is the time from the event's Timestamp to its handling.
	Lag time.Duration
}

// FeedRecording is what a FeedLoad's consumer did: its incarnations, in
// the order they started, and every handling, in the order the handler
// returned.
type FeedRecording struct {
	Consumer     string
	Incarnations []Incarnation
	Handlings    []Handling
	// End is the feed's last position once the workloads were over: the
	// consumer was drained past it.
	End timebox.Position
}

// FeedReport sums up a FeedRecording checked against the final feed
// (CheckFeed). Lost, Skipped, Mismatched, Disordered, Reordered and
// Unexplained count anomalies; a correct store leaves them all zero.
type FeedReport struct {
	// Feed is the number of events in the feed up to the recording's End.
	Feed int
	// Handled counts distinct events handled, Handlings every handling,
	// Duplicates the handlings beyond each event's first.
	Handled, Handlings, Duplicates int
	// Restarts counts incarnations after the first; Takeovers those that
	// took over from an Abandoned one; Crashes the Crashed ones.
	Restarts, Takeovers, Crashes int
	// MaxLag is the longest time from an acknowledged event's Timestamp to
	// its first handling.
	MaxLag time.Duration
	// Errors holds the distinct errors of the Crashed incarnations (a
	// few), for diagnosis.
	Errors []string

	// Lost counts acknowledged events never handled.
	Lost int
	// Skipped counts events of the feed (up to End) never handled.
	Skipped int
	// Mismatched counts handlings (up to End) of a position the feed does
	// not hold, or holds with another aggregate, sequence or event ID.
	Mismatched int
	// Disordered counts handlings at or before the previous handling of
	// the same incarnation: one incarnation's positions must increase.
	Disordered int
	// Reordered counts first handlings at or before an earlier first
	// handling: across the recording, events are first handled in
	// position order, so none was skipped and delivered later.
	Reordered int
	// Unexplained counts repeated handlings not due to a restart: a
	// repeat must come from a later incarnation than the previous
	// handling, that of the incarnation it took over from (the last one
	// to handle anything before it), and be among the first handlings of
	// its incarnation, before any event it handles first: the tail its
	// predecessor handled but had not committed.
	Unexplained int
}

// Anomalies returns the number of anomalies r found.
func (r FeedReport) Anomalies() int {
	return r.Lost + r.Skipped + r.Mismatched + r.Disordered + r.Reordered +
		r.Unexplained
}

// AckedKeys returns the keys of the events of ops' acknowledged (OK)
// writes.
func AckedKeys(ops []Op) []string {
	var res []string
	for _, op := range ops {
		if op.write() && op.Outcome == OK {
			res = append(res, op.Batch.Keys()...)
		}
	}
	return res
}

// CheckFeed checks rec against feed, the store's final feed in position
// order (events after rec.End are ignored), and acked, the keys of the
// acknowledged events (AckedKeys). It is a pure function.
func CheckFeed(rec FeedRecording, feed []*timebox.Event, acked []string) FeedReport {
	var r FeedReport
	r.Restarts = max(0, len(rec.Incarnations)-1)
	for i, inc := range rec.Incarnations {
		switch inc.End {
		case Abandoned:
			if i+1 < len(rec.Incarnations) {
				r.Takeovers++
			}
		case Crashed:
			r.Crashes++
			if !slices.Contains(r.Errors, inc.Err) && len(r.Errors) < maxErrorSamples {
				r.Errors = append(r.Errors, inc.Err)
			}
		}
	}
	byPos := map[timebox.Position]*timebox.Event{}
	for _, ev := range feed {
		if ev != nil && ev.Position.Compare(rec.End) <= 0 {
			byPos[ev.Position] = ev
		}
	}
	r.Feed = len(byPos)
	ack := map[string]bool{}
	for _, k := range acked {
		ack[k] = true
	}
	c := feedChecker{
		r: &r, ack: ack, byPos: byPos, end: rec.End,
		last: map[int]timebox.Position{}, prev: map[timebox.Position]int{},
		pred: map[int]int{}, fresh: map[int]bool{}, keys: map[string]bool{},
	}
	for i, h := range rec.Handlings {
		if _, ok := c.pred[h.Incarnation]; !ok {
			c.pred[h.Incarnation] = -1
			if i > 0 {
				c.pred[h.Incarnation] = rec.Handlings[i-1].Incarnation
			}
		}
		c.handling(h)
	}
	for pos := range byPos {
		if _, ok := c.prev[pos]; !ok {
			r.Skipped++
		}
	}
	for k := range ack {
		if !c.keys[k] {
			r.Lost++
		}
	}
	return r
}

// feedChecker is the state of one CheckFeed.
type feedChecker struct {
	r     *FeedReport
	ack   map[string]bool
	byPos map[timebox.Position]*timebox.Event
	end   timebox.Position
	// last is each incarnation's last handled position; prev the
	// incarnation of each position's latest handling; pred each
	// incarnation's predecessor (-1 for none); fresh marks incarnations
	// that have handled an event first; keys the keys handled.
	last  map[int]timebox.Position
	prev  map[timebox.Position]int
	pred  map[int]int
	fresh map[int]bool
	keys  map[string]bool
	// top is the highest position handled first so far.
	top    timebox.Position
	hasTop bool
}

func (c *feedChecker) handling(h Handling) {
	r := c.r
	r.Handlings++
	if l, ok := c.last[h.Incarnation]; ok && h.Position.Compare(l) <= 0 {
		r.Disordered++
	}
	c.last[h.Incarnation] = h.Position
	if h.Position.Compare(c.end) <= 0 {
		ev := c.byPos[h.Position]
		if ev == nil || ev.AggregateID.String() != h.Aggregate ||
			ev.Sequence != h.Sequence || ev.ID != h.EventID {
			r.Mismatched++
		}
	}
	p, seen := c.prev[h.Position]
	c.prev[h.Position] = h.Incarnation
	if seen {
		r.Duplicates++
		if p >= h.Incarnation || p != c.pred[h.Incarnation] || c.fresh[h.Incarnation] {
			r.Unexplained++
		}
		return
	}
	r.Handled++
	c.fresh[h.Incarnation] = true
	if c.hasTop && h.Position.Compare(c.top) <= 0 {
		r.Reordered++
	} else {
		c.top, c.hasTop = h.Position, true
	}
	if h.Key != "" {
		c.keys[h.Key] = true
		if c.ack[h.Key] {
			r.MaxLag = max(r.MaxLag, h.Lag)
		}
	}
}

// String describes r on a line, and the crashes' errors on one each.
func (r FeedReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "consumer: feed %d events, handled %d (%d handlings, "+
		"%d duplicates), restarts %d (takeovers %d, crashes %d), max lag %s; "+
		"lost %d, skipped %d, mismatched %d, disordered %d, reordered %d, "+
		"unexplained duplicates %d",
		r.Feed, r.Handled, r.Handlings, r.Duplicates, r.Restarts, r.Takeovers,
		r.Crashes, r.MaxLag.Round(time.Millisecond), r.Lost, r.Skipped,
		r.Mismatched, r.Disordered, r.Reordered, r.Unexplained)
	for _, e := range r.Errors {
		fmt.Fprintf(&b, "\ncrash: %s", e)
	}
	return b.String()
}

// FeedMarkdownHeader is the header of the table FeedReport.Markdown rows
// belong to.
const FeedMarkdownHeader = "| Backend | Scenario | Feed | Handled | Dup " +
	"| Restarts (takeovers, crashes) | Lost | Skipped | Out of order " +
	"| Unexplained dup | Mismatched | Max lag |\n" +
	"|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"

// Markdown returns r as a row of the RELIABILITY.md consumer table
// (FeedMarkdownHeader); Out of order is Disordered + Reordered.
func (r FeedReport) Markdown(backend, scenario string) string {
	return fmt.Sprintf("| %s | %s | %d | %d | %d | %d (%d, %d) | %d | %d | %d "+
		"| %d | %d | %s |",
		backend, scenario, r.Feed, r.Handled, r.Duplicates, r.Restarts,
		r.Takeovers, r.Crashes, r.Lost, r.Skipped, r.Disordered+r.Reordered,
		r.Unexplained, r.Mismatched, r.MaxLag.Round(time.Millisecond))
}

// RequireFeed logs r and fails t unless r shows no anomaly, some events
// handled, and the consumer restarted at least twice, once by a takeover.
func RequireFeed(t testing.TB, r FeedReport) {
	t.Helper()
	t.Log(r.String())
	require.Zero(t, r.Lost, "acknowledged events never handled")
	require.Zero(t, r.Skipped, "feed events never handled")
	require.Zero(t, r.Mismatched, "handled events unlike the feed's")
	require.Zero(t, r.Disordered, "positions not increasing within an incarnation")
	require.Zero(t, r.Reordered, "first handlings out of position order")
	require.Zero(t, r.Unexplained, "duplicates not due to a restart")
	require.Positive(t, r.Handled, "no event handled")
	require.GreaterOrEqual(t, r.Restarts, 2, "consumer restarts")
	require.Positive(t, r.Takeovers, "takeovers after an abandoned incarnation")
}

// describeIncarnations lists incarnations for an error message.
func describeIncarnations(incs []Incarnation) string {
	var b strings.Builder
	for i, inc := range incs {
		fmt.Fprintf(&b, "\n  %d on store %d: %s", i, inc.Store, inc.End)
		if inc.Err != "" {
			fmt.Fprintf(&b, " (%s)", inc.Err)
		}
	}
	return b.String()
}
