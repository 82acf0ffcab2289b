package conformance

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
)

// strictCases check that an Executor never folds an event silently wrong:
// undecodable events fail loudly unless skipped on purpose, strict mode
// refuses event types without an Applier, and the writer's state is the
// state every other process rebuilds from the stored bytes.
var strictCases = []testCase{
	{"UndecodableFailsLoad", testUndecodableFailsLoad},
	{"UndecodableFailsCatchUp", testUndecodableFailsCatchUp},
	{"UndecodableRaise", testUndecodableRaise},
	{"UndecodableFailsSaveSnapshot", testUndecodableSaveSnapshot},
	{"RequireAppliers", testRequireAppliers},
	{"RaiseAppliesStoredBytes", testRaiseAppliesStored},
}

// requireUndecodable checks err is the classed decode error for the event
// of type typ at seq.
func requireUndecodable(t *testing.T, err error, typ string, seq int) {
	t.Helper()
	require.ErrorIs(t, err, timebox.ErrInvalidEvent)
	require.ErrorContains(t, err, `"`+typ+`"`)
	require.ErrorContains(t, err, "sequence "+itoa(seq))
	var jerr *json.UnmarshalTypeError
	require.ErrorAs(t, err, &jerr, "the decode error is wrapped")
}

func itoa(i int) string {
	return string(mustJSON(i))
}

func testUndecodableFailsLoad(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("tally", "1")
	seed(t, st, id, ev("item", `"a"`), ev("item", `{"amount":"100"}`))
	_, err := tallyExec(st).Exec(id, add("b"))
	requireUndecodable(t, err, "item", 1)
	require.Len(t, events(t, st, id), 2, "nothing written")

	// Types without an Applier are still ignored: only a decode failure of
	// an Applier that exists is an error.
	other := aid("tally", "2")
	seed(t, st, other, ev("unknown", `{"x":1}`), ev("item", `"a"`))
	exec(t, tallyExec(st), other, add("b"), "a", "b")
}

func testUndecodableFailsCatchUp(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("tally", "1")
	ex := tallyExec(st)
	exec(t, ex, id, add("a"), "a")
	require.NoError(t, st.AppendEvents(id, 1, []*timebox.Event{ev("item", `17`)}))
	_, err := ex.Exec(id, add("b"))
	requireUndecodable(t, err, "item", 1)
	require.Len(t, events(t, st, id), 2, "nothing written")
}

func testUndecodableRaise(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("tally", "1")
	ex := tallyExec(st)
	_, err := ex.Exec(id, func(_ tally, ag *timebox.Aggregator[tally]) error {
		require.NoError(t, timebox.Raise(ag, "item", "a"))
		err := timebox.Raise(ag, "item", 17) // the Applier wants a string
		requireUndecodable(t, err, "item", 1)
		require.Equal(t, []string{"a"}, ag.Value().Items)
		require.EqualValues(t, 1, ag.NextSequence(), "nothing raised")
		return err
	})
	require.ErrorIs(t, err, timebox.ErrInvalidEvent)
	require.Empty(t, events(t, st, id))

	// A command may go on after a failed Raise: only the good events go.
	exec(t, ex, id, func(_ tally, ag *timebox.Aggregator[tally]) error {
		require.Error(t, timebox.Raise(ag, "item", 17))
		return timebox.Raise(ag, "item", "b")
	}, "b")
	require.Equal(t, quoted("b"), logItems(t, st, id))
}

func testUndecodableSaveSnapshot(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("tally", "1")
	seed(t, st, id, ev("item", `"a"`), ev("item", `[]`))
	requireUndecodable(t, tallyExec(st).SaveSnapshot(id), "item", 1)
	_, res := snapshotTally(t, st, id)
	require.Zero(t, res.SnapshotSize, "no snapshot stored")
}

func testRequireAppliers(t *testing.T, s Suite) {
	id := aid("tally", "1")
	typo := func(_ tally, ag *timebox.Aggregator[tally]) error {
		return timebox.Raise(ag, "itme", "a")
	}

	lax := s.store(t)
	exec(t, tallyExec(lax), id, typo)
	require.Len(t, events(t, lax, id), 1, "stored and ignored by default")

	st := s.store(t, timebox.Config{RequireAppliers: true})
	require.True(t, st.Config().RequireAppliers)
	_, err := tallyExec(st).Exec(id, typo)
	require.ErrorIs(t, err, timebox.ErrNoApplier)
	require.ErrorContains(t, err, `"itme"`)
	require.Empty(t, events(t, st, id))
	exec(t, tallyExec(st), id, add("a"), "a")
}

// journal's appliers decode each event's payload; the payload types below
// marshal differently from their Go values.
type journal struct {
	Notes  []string       `json:"notes"`
	Last   map[string]int `json:"last"`
	Secret string         `json:"secret"`
}

type hiddenNote struct {
	Text   string `json:"text"`
	Secret string `json:"-"`
}

// upper marshals as its text in capitals.
type upper struct{ Text string }

func (u upper) MarshalJSON() ([]byte, error) {
	b := []byte(u.Text)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return json.Marshal(string(b))
}

func (u *upper) UnmarshalJSON(b []byte) error {
	return json.Unmarshal(b, &u.Text)
}

var journalAppliers = timebox.Appliers[journal]{
	"hidden": timebox.MakeApplier(func(l journal, _ *timebox.Event, n hiddenNote) journal {
		l.Notes = append(append([]string{}, l.Notes...), n.Text)
		l.Secret = n.Secret
		return l
	}),
	"upper": timebox.MakeApplier(func(l journal, _ *timebox.Event, u upper) journal {
		l.Notes = append(append([]string{}, l.Notes...), u.Text)
		return l
	}),
	"counts": timebox.MakeApplier(func(l journal, _ *timebox.Event, m map[string]int) journal {
		l.Last = m
		return l
	}),
}

func testRaiseAppliesStored(t *testing.T, s Suite) {
	st := s.store(t)
	id := aid("journal", "1")
	newJournal := func() journal { return journal{} }
	ex := timebox.NewExecutor(st, newJournal, journalAppliers)
	var counts map[string]int
	got, err := ex.Exec(id, func(_ journal, ag *timebox.Aggregator[journal]) error {
		if err := timebox.Raise(ag, "hidden", hiddenNote{Text: "a", Secret: "s"}); err != nil {
			return err
		}
		if err := timebox.Raise(ag, "upper", upper{Text: "b"}); err != nil {
			return err
		}
		counts = map[string]int{"n": 1}
		if err := timebox.Raise(ag, "counts", counts); err != nil {
			return err
		}
		counts["n"] = 99 // after Raise: must not reach any state
		counts["extra"] = 1
		return nil
	})
	require.NoError(t, err)
	want := journal{Notes: []string{"a", "B"}, Last: map[string]int{"n": 1}}
	require.Equal(t, want, got)

	fresh, err := timebox.NewExecutor(st, newJournal, journalAppliers).Exec(id, readJournal)
	require.NoError(t, err)
	require.Equal(t, want, fresh, "a fresh load rebuilds the writer's state")
	cached, err := ex.Exec(id, readJournal)
	require.NoError(t, err)
	require.Equal(t, want, cached, "the writer's cache")
}

// readJournal is a command that raises nothing, for reading a state.
func readJournal(journal, *timebox.Aggregator[journal]) error { return nil }
