package codec_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/codec"
)

// BenchmarkDecodeEvents decodes a batch of 100 records of one type, with
// IDs, the shape of a feed entry: 1 op is the batch.
func BenchmarkDecodeEvents(b *testing.B) {
	id := timebox.NewAggregateID("order", "1")
	recs := make([][]byte, 100)
	for i := range recs {
		recs[i] = codec.EncodeEvent(&timebox.Event{
			Sequence: int64(i), Timestamp: time.Now(), Type: "deposited",
			ID:   fmt.Sprintf("0193a5b2-7c1d-7e0f-8a9b-%012d", i),
			Data: []byte(`{"amount":42,"note":"` + fmt.Sprint(i) + `"}`),
		})
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := codec.DecodeEvents(id, recs); err != nil {
			b.Fatal(err)
		}
	}
}
