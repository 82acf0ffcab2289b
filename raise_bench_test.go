package timebox_test

import (
	"strings"
	"testing"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/memory"
)

// note is a typed payload of about 256 bytes, decoded by its Applier.
type note struct {
	Tag string `json:"tag"`
	Pad string `json:"pad"`
}

type noteCount struct{ N int }

// BenchmarkExecSeqTyped is exec-seq with a typed Applier built by
// MakeApplier, so each Raise pays whatever applying the event costs.
func BenchmarkExecSeqTyped(b *testing.B) {
	store, err := memory.NewPersistence().NewStore(timebox.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = store.Close() }()
	ex := timebox.NewExecutor(store, func() noteCount { return noteCount{} },
		timebox.Appliers[noteCount]{
			"note": timebox.MakeApplier(func(c noteCount, _ *timebox.Event, n note) noteCount {
				if n.Tag != "" {
					c.N++
				}
				return c
			}),
		})
	id := timebox.NewAggregateID("bench", "typed")
	payload := note{Tag: "t", Pad: strings.Repeat("x", 230)}
	cmd := func(_ noteCount, ag *timebox.Aggregator[noteCount]) error {
		return timebox.Raise(ag, "note", payload)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := ex.Exec(id, cmd); err != nil {
			b.Fatal(err)
		}
	}
}
