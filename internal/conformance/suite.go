// Package conformance is the one test suite every Timebox backend runs. A
// backend's store_test.go plugs a factory into Run:
//
//	conformance.Run(t, conformance.Suite{
//		New: func(t *testing.T, cfg timebox.Config) *timebox.Store {
//			s, err := memory.NewPersistence().NewStore(cfg)
//			require.NoError(t, err)
//			t.Cleanup(func() { _ = s.Close() })
//			return s
//		},
//		Archiving: true,
//	})
//
// Every case gets its own fresh store, so cases run in parallel. The suite
// covers the rules of SPEC §2–§5: appends and conflicts, loading,
// snapshots and trimming, the Executor, indexing, listing, archiving,
// lifecycle, bad input and concurrency.
package conformance

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
)

// Suite describes the backend under test.
type Suite struct {
	// New returns a fresh, empty store with cfg laid over the defaults;
	// it registers its own cleanup with t.Cleanup.
	New func(t *testing.T, cfg timebox.Config) *timebox.Store

	// Archiving says whether the backend supports archiving.
	Archiving bool

	// NoFeed says the backend implements neither timebox.Feeder nor
	// timebox.ConsumerBackend, as a third-party backend may not; the
	// Feed/ cases then check that the feed calls say so. Every bundled
	// backend has a feed.
	NoFeed bool

	// Server returns the host:port of the backend's server, and Faulty
	// opens stores on it through a fault proxy; with both set, the Faults/
	// cases run. Leave them nil for a backend without one server address.
	Server func(t *testing.T) string
	Faulty Faulty

	// Shared opens stores that share one namespace; with it set and
	// ContentionEnv in the environment, the Contention/ cases run.
	Shared Shared
	// NewBackend, when set, returns a fresh, empty backend of the kind New
	// opens stores on, closed by its own t.Cleanup. The cases that call
	// the Backend seam directly (conditional snapshots, which no Store
	// method requests) run only when it is set.
	NewBackend func(t *testing.T) timebox.Backend
}

// testCase is one conformance case; it makes its own stores through s.
type testCase struct {
	name string
	fn   func(t *testing.T, s Suite)
}

type group struct {
	name  string
	cases []testCase
}

// Run runs every conformance case against s as subtests grouped by topic:
// Append/, Load/, Snapshot/, Executor/, Queue/, Get/, Panic/, Strict/,
// IfHead/, Busy/, Index/, List/, Page/, Archive/, Lifecycle/, BadInput/,
// Concurrency/, Ident/, Commands/, Feed/, Faults/ and Contention/.
func Run(t *testing.T, s Suite) {
	require.NotNil(t, s.New, "Suite.New is required")
	groups := []group{
		{"Append", appendCases},
		{"Load", loadCases},
		{"Snapshot", snapshotCases},
		{"Executor", executorCases},
		{"Queue", queueCases},
		{"Get", getCases},
		{"Panic", panicCases},
		{"Strict", strictCases},
		{"IfHead", ifHeadCases(s)},
		{"Busy", busyCases},
		{"Index", indexCases},
		{"List", listCases},
		{"Page", pageCases},
		{"Archive", archiveCases(s.Archiving)},
		{"Lifecycle", lifecycleCases},
		{"BadInput", badInputCases},
		{"Concurrency", concurrencyCases},
		{"Ident", identCases(s.Archiving)},
		{"Commands", commandCases},
		{"Feed", feedCases(s)},
		{"Faults", faultCases(s)},
		{"Contention", contentionCases(s)},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, c := range g.cases {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					c.fn(t, s)
				})
			}
		})
	}
}

// store returns a fresh store with cfg over the defaults, ready for use.
func (s Suite) store(t *testing.T, cfg ...timebox.Config) *timebox.Store {
	t.Helper()
	var c timebox.Config
	if len(cfg) > 0 {
		c = cfg[0]
	}
	st := s.New(t, c)
	require.NotNil(t, st)
	ctx, cancel := contextWithTimeout(waitTimeout)
	defer cancel()
	require.NoError(t, st.WaitReady(ctx))
	return st
}

// waitTimeout bounds every wait the suite makes for something that should
// happen at once; it is generous so that no case fails on a slow machine.
const waitTimeout = 30 * time.Second

// baseTime is a timestamp with nanoseconds, outside UTC.
var baseTime = time.Date(
	2026, 3, 14, 15, 9, 26, 535897932, time.FixedZone("X", 5*3600+30*60),
)

// at returns baseTime plus i milliseconds.
func at(i int) time.Time {
	return baseTime.Add(time.Duration(i) * time.Millisecond)
}

func aid(parts ...string) timebox.AggregateID {
	id := make(timebox.AggregateID, len(parts))
	for i, p := range parts {
		id[i] = timebox.ID(p)
	}
	return id
}

// ev returns an event of typ with data, at at(0).
func ev(typ, data string) *timebox.Event {
	return &timebox.Event{
		Timestamp: at(0),
		Type:      timebox.EventType(typ),
		Data:      json.RawMessage(data),
	}
}

// items returns n events of type "item" whose data are the JSON strings
// "<prefix>0", "<prefix>1", ..., at at(0), at(1), ...
func items(prefix string, n int) []*timebox.Event {
	res := make([]*timebox.Event, n)
	for i := range res {
		res[i] = &timebox.Event{
			Timestamp: at(i),
			Type:      "item",
			Data:      quote(fmt.Sprintf("%s%d", prefix, i)),
		}
	}
	return res
}

func quote(s string) json.RawMessage {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return b
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// seed appends evs to a new aggregate id at 0.
func seed(
	t *testing.T, st *timebox.Store, id timebox.AggregateID, evs ...*timebox.Event,
) {
	t.Helper()
	require.NoError(t, st.AppendEvents(id, 0, evs))
}

// events reads every stored event of id.
func events(
	t *testing.T, st *timebox.Store, id timebox.AggregateID,
) []*timebox.Event {
	t.Helper()
	res, err := st.GetEvents(id, 0)
	require.NoError(t, err)
	require.NotNil(t, res)
	return res
}

// requireStored checks that got are the stored forms of want, appended to
// id from sequence from on: same type, data byte for byte, timestamp in
// UTC, sequence and ID assigned.
func requireStored(
	t *testing.T, id timebox.AggregateID, from int64,
	want []*timebox.Event, got []*timebox.Event,
) {
	t.Helper()
	require.Len(t, got, len(want))
	for i, w := range want {
		g := got[i]
		require.NotNil(t, g, "event %d", i)
		require.Equal(t, from+int64(i), g.Sequence, "event %d sequence", i)
		require.Equal(t, w.Type, g.Type, "event %d type", i)
		require.Equal(t, string(w.Data), string(g.Data), "event %d data", i)
		require.True(t, id.Equal(g.AggregateID),
			"event %d aggregate ID: %q", i, g.AggregateID)
		require.Same(t, time.UTC, g.Timestamp.Location(), "event %d zone", i)
		require.True(t, w.Timestamp.Equal(g.Timestamp),
			"event %d timestamp: want %v, got %v", i, w.Timestamp, g.Timestamp)
	}
}

// requireSequences checks that evs have sequences from, from+1, ...
func requireSequences(t *testing.T, from int64, evs []*timebox.Event) {
	t.Helper()
	for i, e := range evs {
		require.Equal(t, from+int64(i), e.Sequence, "event %d", i)
	}
}

// conflict asserts err is a *VersionConflictError and returns it.
func conflict(t *testing.T, err error) *timebox.VersionConflictError {
	t.Helper()
	require.Error(t, err)
	require.ErrorIs(t, err, timebox.ErrVersionConflict)
	var vc *timebox.VersionConflictError
	require.ErrorAs(t, err, &vc)
	return vc
}
