package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/codec"
	"github.com/kode4food/timebox/internal/testserver"
)

// feedWait is how long these tests wait for a condition: generous, since
// the test server is shared.
const feedWait = time.Minute

// feedStore opens a Persistence and a Store on a Prefix of the test's own
// in a schema of its own, and a session for the transactions the tests
// hold open.
func feedStore(
	t *testing.T, cfgs ...timebox.Config,
) (*Persistence, *timebox.Store, *pgx.Conn) {
	t.Helper()
	u := privateSchemaURL(t)
	p, err := NewPersistence(Config{URL: u, Prefix: testserver.Prefix(t), MaxConns: 4})
	require.NoError(t, err)
	cfg := timebox.Config{}
	if len(cfgs) > 0 {
		cfg = cfgs[0]
	}
	s, err := p.NewStore(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	conn, err := pgx.Connect(context.Background(), u)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return p, s, conn
}

func feedEvent(typ string) *timebox.Event {
	return &timebox.Event{
		Type: timebox.EventType(typ), Data: []byte(`{}`),
		Timestamp: time.Now(), ID: typ,
	}
}

// appendIn runs the append statement for one event of id at seq inside
// tx, as Persistence.Append sends it.
func appendIn(
	t *testing.T, tx pgx.Tx, p *Persistence, id timebox.AggregateID,
	seq int64, typ string,
) error {
	t.Helper()
	ev := feedEvent(typ)
	ev.AggregateID, ev.Sequence = id, seq
	args := appendArgs(p.ns, codec.EncodeID(id), timebox.AppendRequest{
		ID: id, ExpectedSequence: seq, Events: []*timebox.Event{ev},
	}, false)
	var appended bool
	err := tx.QueryRow(context.Background(), appendSQL, args...).Scan(&appended)
	require.True(t, err != nil || appended)
	return err
}

func feedTypes(evs []*timebox.Event) []string {
	res := make([]string, len(evs))
	for i, ev := range evs {
		res[i] = string(ev.Type)
	}
	return res
}

// readAll reads the whole feed after pos, at once.
func readAll(t *testing.T, s *timebox.Store, pos timebox.Position) []*timebox.Event {
	t.Helper()
	evs, err := s.ReadAll(context.Background(), pos, 1000)
	require.NoError(t, err)
	return evs
}

// readN reads the feed after pos until it has n events: an open
// transaction elsewhere on the shared server may hold it back a while.
func readN(
	t *testing.T, p *Persistence, pos timebox.Position, n int,
) []*timebox.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), feedWait)
	defer cancel()
	var res []*timebox.Event
	for len(res) < n {
		evs, err := p.ReadFeed(ctx, timebox.FeedRequest{
			After: pos, Limit: 1000, Wait: time.Second,
		})
		require.NoError(t, err)
		for _, ev := range evs {
			res = append(res, ev)
			pos = ev.Position
		}
	}
	return res
}

// A transaction that appended and stays open holds back every append
// committed after it: the reader sees none of them, however often it
// looks, and once the transaction commits it reads all of them, the held
// one first (its xid is the smallest), in position order.
func TestFeedHeldOpenTransaction(t *testing.T) {
	p, s, conn := feedStore(t)
	ctx := context.Background()
	require.NoError(t, s.AppendEvents(timebox.NewAggregateID("before"), 0,
		[]*timebox.Event{feedEvent("before")}))
	seen := readN(t, p, timebox.Position{}, 1)
	require.Equal(t, []string{"before"}, feedTypes(seen))
	last := seen[0].Position

	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	require.NoError(t, appendIn(t, tx, p, timebox.NewAggregateID("held"), 0, "held"))

	for i, name := range []string{"later1", "later2", "later3"} {
		id := timebox.NewAggregateID(timebox.ID(name))
		require.NoError(t, s.AppendEvents(id, 0, []*timebox.Event{feedEvent(name)}))
		require.Empty(t, readAll(t, s, last), "after commit %d", i)
	}
	// A waiting reader is woken by the held transaction's commit.
	got := make(chan []*timebox.Event, 1)
	go func() {
		evs, _ := p.ReadFeed(ctx, timebox.FeedRequest{
			After: last, Limit: 100, Wait: feedWait,
		})
		got <- evs
	}()
	require.NoError(t, tx.Commit(ctx))
	evs := <-got
	require.NotEmpty(t, evs)
	all := readN(t, p, last, 4)
	require.Equal(t, []string{"held", "later1", "later2", "later3"}, feedTypes(all))
	require.Equal(t, feedTypes(all)[:len(evs)], feedTypes(evs))
	requireIncreasing(t, append(seen, all...))
}

// A transaction that appended and rolls back leaves no hole to wait on:
// the appends committed after it are read as soon as it ends, and its
// event never.
func TestFeedRolledBackTransaction(t *testing.T) {
	p, s, conn := feedStore(t)
	ctx := context.Background()
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	require.NoError(t, appendIn(t, tx, p, timebox.NewAggregateID("doomed"), 0, "doomed"))
	for _, name := range []string{"kept1", "kept2"} {
		id := timebox.NewAggregateID(timebox.ID(name))
		require.NoError(t, s.AppendEvents(id, 0, []*timebox.Event{feedEvent(name)}))
	}
	require.Empty(t, readAll(t, s, timebox.Position{}))
	require.NoError(t, tx.Rollback(ctx))
	require.Equal(t, []string{"kept1", "kept2"},
		feedTypes(readN(t, p, timebox.Position{}, 2)))
	require.NoError(t, s.AppendEvents(timebox.NewAggregateID("doomed"), 0,
		[]*timebox.Event{feedEvent("retried")}))
	require.Equal(t, []string{"kept1", "kept2", "retried"},
		feedTypes(readN(t, p, timebox.Position{}, 3)))
}

// A read with a Wait returns within it while committed events are held
// back by an older open transaction; only a read without one waits
// heldWait for them. A durable consumer with a lease shorter than
// heldWait once lost it to another process while it waited.
func TestFeedHeldBackHonoursWait(t *testing.T) {
	p, s, conn := feedStore(t)
	ctx := context.Background()
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	require.NoError(t, tx.QueryRow(ctx, "SELECT pg_current_xact_id()::text::bigint").Scan(new(int64)))
	require.NoError(t, s.AppendEvents(timebox.NewAggregateID("held"), 0,
		[]*timebox.Event{feedEvent("held")}))

	start := time.Now()
	evs, err := p.ReadFeed(ctx, timebox.FeedRequest{Limit: 10, Wait: 50 * time.Millisecond})
	require.NoError(t, err)
	require.Empty(t, evs, "held back by the open transaction")
	require.Less(t, time.Since(start), heldWait, "waited past the request's Wait")

	require.NoError(t, tx.Rollback(ctx))
	require.Equal(t, []string{"held"}, feedTypes(readN(t, p, timebox.Position{}, 1)))
}

// The xid-order trap: transaction B takes its ID, then A appends seq 0
// and commits with a greater ID, then B appends seq 1 after it. Were B to
// commit, seq 1 would sort before seq 0 in the feed. The head row keeps
// A's xid, so B's append fails with serialization_failure, which the
// backend reports as transient (the Store retries it in a new
// transaction), and writes nothing; a new transaction appends seq 1 after
// seq 0.
func TestFeedXidOrderTrap(t *testing.T) {
	p, s, conn := feedStore(t)
	ctx := context.Background()
	id := timebox.NewAggregateID("trap")

	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	var bXid int64
	require.NoError(t, tx.QueryRow(ctx,
		"SELECT pg_current_xact_id()::text::bigint").Scan(&bXid))

	require.NoError(t, s.AppendEvents(id, 0, []*timebox.Event{feedEvent("a")}))

	err = appendIn(t, tx, p, id, 1, "b")
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr), "%v", err)
	require.Equal(t, "40001", pgErr.Code)
	require.True(t, unavailable(err))
	require.NoError(t, tx.Rollback(ctx))

	tx2, err := conn.Begin(ctx)
	require.NoError(t, err)
	require.NoError(t, appendIn(t, tx2, p, id, 1, "b"))
	require.NoError(t, tx2.Commit(ctx))

	evs := readN(t, p, timebox.Position{}, 2)
	require.Equal(t, []string{"a", "b"}, feedTypes(evs))
	require.Greater(t, evs[0].Position.Commit, uint64(bXid))
	requireIncreasing(t, evs)
}

// Trimming and archiving remove events from the live log, not from the
// feed: it still returns every event appended, once, in order.
func TestFeedKeepsTrimmedAndArchived(t *testing.T) {
	p, s, _ := feedStore(t, timebox.Config{TrimEvents: true})
	trimmed := timebox.NewAggregateID("trimmed")
	archived := timebox.NewAggregateID("archived")
	require.NoError(t, s.AppendEvents(trimmed, 0,
		[]*timebox.Event{feedEvent("t0"), feedEvent("t1"), feedEvent("t2")}))
	require.NoError(t, s.AppendEvents(archived, 0, []*timebox.Event{feedEvent("a0")}))
	require.NoError(t, s.PutSnapshot(trimmed, map[string]int{"n": 2}, 2))
	require.NoError(t, s.Archive(archived))
	require.NoError(t, s.AppendEvents(archived, 0, []*timebox.Event{feedEvent("a0'")}))

	evs, err := s.GetEvents(trimmed, 0)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	feed := readN(t, p, timebox.Position{}, 5)
	require.Equal(t, []string{"t0", "t1", "t2", "a0", "a0'"}, feedTypes(feed))
	requireIncreasing(t, feed)
	require.Equal(t, uint64(2), feed[2].Position.Offset)
	require.Equal(t, feed[0].Position.Commit, feed[2].Position.Commit)

	// Pages that end inside the append trimmed in part, whose kept events
	// the server returns after its live one.
	for _, limit := range []int{1, 2, 4} {
		var got []*timebox.Event
		var pos timebox.Position
		for len(got) < len(feed) {
			evs, err := p.ReadFeed(context.Background(), timebox.FeedRequest{
				After: pos, Limit: limit, Wait: time.Second,
			})
			require.NoError(t, err)
			require.LessOrEqual(t, len(evs), limit)
			for _, ev := range evs {
				got, pos = append(got, ev), ev.Position
			}
		}
		require.Equal(t, feedTypes(feed), feedTypes(got), "pages of %d", limit)
		requireIncreasing(t, got)
	}
}

func requireIncreasing(t *testing.T, evs []*timebox.Event) {
	t.Helper()
	for i := 1; i < len(evs); i++ {
		require.Equal(t, -1, evs[i-1].Position.Compare(evs[i].Position),
			"%s then %s", evs[i-1].Position, evs[i].Position)
	}
}

// A reader catching up in full pages is read ahead by statements that
// grow from aheadEvents to maxAheadEvents events; one that falls behind
// fills the read-ahead's slots and cuts its statements short. Both see
// every event after their start exactly once, in order, while appends go
// on, as one read of the whole feed (a page never full, so never read
// ahead) does.
func TestFeedReadAhead(t *testing.T) {
	p, s, _ := feedStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), feedWait)
	defer cancel()
	const seeded, aggregates, limit = 700, 7, 100
	batch := func(n int) []*timebox.Event {
		evs := make([]*timebox.Event, n)
		for i := range evs {
			evs[i] = feedEvent("seed")
		}
		return evs
	}
	for i := range seeded {
		id := timebox.NewAggregateID("ra", timebox.ID(fmt.Sprint(i%aggregates)))
		require.NoError(t, s.AppendEvents(id, int64(i/aggregates*100), batch(100)))
	}
	const written = 30
	total := seeded*100 + written*10
	require.Greater(t, seeded*100, aheadEvents+2*aheadEvents+4*aheadEvents+limit)

	// read reads from after until it has want events, pausing after each
	// of the first slow pages.
	read := func(after timebox.Position, want, slow int) ([]*timebox.Event, error) {
		var res []*timebox.Event
		for pages := 0; len(res) < want; pages++ {
			evs, err := s.ReadAll(ctx, after, limit)
			if err != nil {
				return res, err
			}
			if len(evs) == 0 {
				time.Sleep(time.Millisecond)
			}
			for _, ev := range evs {
				res, after = append(res, ev), ev.Position
			}
			if pages < slow {
				time.Sleep(5 * time.Millisecond)
			}
		}
		return res, nil
	}
	mid, err := read(timebox.Position{}, 30000, 0)
	require.NoError(t, err)
	start := mid[29999].Position

	var got [2][]*timebox.Event
	var errs [3]error
	var wg sync.WaitGroup
	wg.Go(func() {
		id := timebox.NewAggregateID("ra", "w")
		for i := range written {
			if errs[2] = s.AppendEvents(id, int64(10*i), batch(10)); errs[2] != nil {
				return
			}
		}
	})
	wg.Go(func() { got[0], errs[0] = read(timebox.Position{}, total, 0) })
	wg.Go(func() { got[1], errs[1] = read(start, total-30000, 40) })
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}

	var all []*timebox.Event
	for len(all) < total {
		evs, err := p.ReadFeed(ctx, timebox.FeedRequest{Limit: 1 << 20, Wait: time.Second})
		require.NoError(t, err)
		all = evs
	}
	key := func(evs []*timebox.Event) []string {
		res := make([]string, len(evs))
		for i, ev := range evs {
			res[i] = fmt.Sprint(ev.Position, ev.AggregateID, ev.Sequence)
		}
		return res
	}
	require.Len(t, all, total)
	require.Equal(t, key(all), key(got[0]))
	require.Equal(t, key(all[30000:]), key(got[1]))
}
