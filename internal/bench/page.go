package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kode4food/timebox"
)

// PagingAggregates is how many aggregates Paging puts in one status.
const PagingAggregates = 100_000

// PageSize is the page Paging reads.
const PageSize = 100

// Paging puts PagingAggregates aggregates in one status and then measures,
// as sub-benchmarks, a page of PageSize from the start ("page-first") and
// from the middle ("page-middle") of ListAggregatesByStatusPage, and the
// full ListAggregatesByStatus ("full-list"). s must use StatusIndexer.
// Backends run it from BenchmarkPaging (not part of Run: seeding takes a
// while on a server).
func Paging(b *testing.B, s *timebox.Store) {
	base := freshID("page")
	status := string(base[len(base)-1])
	seedStatus(b, s, base, status, PagingAggregates)
	ctx := context.Background()

	// The middle page's cursor: walk to it once.
	var middle timebox.Cursor
	for range PagingAggregates / 2 / 1000 {
		page, err := s.ListAggregatesByStatusPage(ctx, status, middle, 1000)
		if err != nil {
			b.Fatal(err)
		}
		middle = page.Next
	}
	page := func(after timebox.Cursor) func(_, _ int) error {
		return func(_, _ int) error {
			res, err := s.ListAggregatesByStatusPage(ctx, status, after, PageSize)
			if err == nil && (len(res.Entries) != PageSize || res.Next == "") {
				err = fmt.Errorf("page of %d entries, next %q", len(res.Entries), res.Next)
			}
			return err
		}
	}
	b.Run("page-first", func(b *testing.B) { run(b, 1, page("")).report(b, "queries/s") })
	b.Run("page-middle", func(b *testing.B) { run(b, 1, page(middle)).report(b, "queries/s") })
	b.Run("full-list", func(b *testing.B) {
		run(b, 1, func(_, _ int) error {
			res, err := s.ListAggregatesByStatus(status)
			if err == nil && len(res) != PagingAggregates {
				err = fmt.Errorf("listed %d aggregates, want %d", len(res), PagingAggregates)
			}
			return err
		}).report(b, "queries/s")
	})
}

// seedStatus appends one event to each of n aggregates under base, by 16
// goroutines, putting each in status (through StatusIndexer).
func seedStatus(b *testing.B, s *timebox.Store, base timebox.AggregateID, status string, n int) {
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	start := time.Now()
	for g := range 16 {
		wg.Go(func() {
			for i := g; i < n; i += 16 {
				id := append(base.Clone(), timebox.ID(fmt.Sprint(i)))
				evs := []*timebox.Event{{
					Timestamp: start.Add(time.Duration(i)), Type: timebox.EventType(status),
					Data: json.RawMessage(`{}`),
				}}
				if err := s.AppendEvents(id, 0, evs); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.Logf("seeded %d aggregates in %v", n, time.Since(start).Round(time.Millisecond))
}
