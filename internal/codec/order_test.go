package codec_test

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/codec"
)

// AggregateID.CompareKey is the byte order of EncodeID, which the backends'
// indexes page by.
func TestCompareKeyIsEncodedOrder(t *testing.T) {
	alphabet := []string{"a", "Z", "0", "9", "-", "_", ".", "~", "/", "@", ":", "%", "{", "é", " ", "\x00", "\x7f", "\xff"}
	rng := rand.New(rand.NewPCG(1, 2))
	gen := func() timebox.AggregateID {
		id := make(timebox.AggregateID, 1+rng.IntN(3))
		for i := range id {
			var b strings.Builder
			for range 1 + rng.IntN(4) {
				b.WriteString(alphabet[rng.IntN(len(alphabet))])
			}
			id[i] = timebox.ID(b.String())
		}
		return id
	}
	check := func(a, b timebox.AggregateID) {
		t.Helper()
		want := strings.Compare(codec.EncodeID(a), codec.EncodeID(b))
		if got := a.CompareKey(b); got != want {
			t.Fatalf("CompareKey(%q, %q) = %d, encoded order %d", a, b, got, want)
		}
	}
	for range 100000 {
		a, b := gen(), gen()
		check(a, b)
		check(a, a)
		if len(a) > 1 {
			check(a, a[:len(a)-1])
		}
	}
	for c := range 256 {
		check(timebox.AggregateID{timebox.ID([]byte{byte(c)})}, timebox.AggregateID{"~"})
		check(timebox.AggregateID{"a", timebox.ID([]byte{byte(c)})}, timebox.AggregateID{"a"})
	}
}
