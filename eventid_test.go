package timebox_test

import (
	"context"
	"fmt"
	"regexp"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/memory"
)

var uuidV7 = regexp.MustCompile(
	`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`,
)

func TestNewEventIDIsIncreasingUUIDv7(t *testing.T) {
	const workers, each = 8, 2000
	ids := make([][]string, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range each {
				ids[w] = append(ids[w], timebox.NewEventID())
			}
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, own := range ids {
		for i, id := range own {
			require.Regexp(t, uuidV7, id)
			require.False(t, seen[id], "%s made twice", id)
			seen[id] = true
			if i > 0 {
				require.Less(t, own[i-1], id, "IDs of one goroutine not increasing")
			}
		}
	}
}

// TestBatchEventIDs: the IDs the Store gives a batch's events are new
// UUIDv7s, later than any made before the append and earlier than any made
// after it, increasing through the batch; an event's own ID is kept.
func TestBatchEventIDs(t *testing.T) {
	const workers, batches, size = 4, 50, 40
	s, err := memory.NewPersistence().NewStore(timebox.Config{})
	require.NoError(t, err)
	defer func() { _ = s.Close() }()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			errs <- appendBatchesWithIDs(s, w, batches, size)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

func appendBatchesWithIDs(s *timebox.Store, w, batches, size int) error {
	id := timebox.NewAggregateID("ids", timebox.ID(fmt.Sprint(w)))
	seen := map[string]bool{}
	for b := range batches {
		evs := make([]*timebox.Event, size)
		own := map[int]string{}
		for i := range evs {
			evs[i] = &timebox.Event{Type: "t", Data: []byte("1")}
			if i%7 == 3 {
				own[i] = fmt.Sprintf("own-%d-%d-%d", w, b, i)
				evs[i].ID = own[i]
			}
		}
		before := timebox.NewEventID()
		if err := s.AppendEvents(id, int64(b*size), evs); err != nil {
			return err
		}
		after := timebox.NewEventID()
		stored, err := s.GetEvents(id, int64(b*size))
		if err != nil {
			return err
		}
		last := before
		for i, ev := range stored {
			if evs[i].ID != own[i] {
				return fmt.Errorf("caller's event %d changed: ID %q", i, evs[i].ID)
			}
			if seen[ev.ID] {
				return fmt.Errorf("ID %s given twice", ev.ID)
			}
			seen[ev.ID] = true
			if want, ok := own[i]; ok {
				if ev.ID != want {
					return fmt.Errorf("event %d: ID %q, want its own %q", i, ev.ID, want)
				}
				continue
			}
			if !uuidV7.MatchString(ev.ID) || ev.ID <= last || ev.ID >= after {
				return fmt.Errorf("event %d: ID %s not a UUIDv7 between %s and %s",
					i, ev.ID, last, after)
			}
			last = ev.ID
		}
	}
	return nil
}

func TestWithMetadataMerges(t *testing.T) {
	ctx := context.Background()
	assert.Nil(t, timebox.MetadataFrom(ctx))
	assert.Equal(t, ctx, timebox.WithMetadata(ctx, nil))

	md := timebox.Metadata{"a": "1", "b": "1"}
	ctx1 := timebox.WithMetadata(ctx, md)
	md["a"] = "changed"
	assert.Equal(t, timebox.Metadata{"a": "1", "b": "1"}, timebox.MetadataFrom(ctx1))

	ctx2 := timebox.WithMetadata(ctx1, timebox.Metadata{"b": "2", "c": "2"})
	assert.Equal(t, timebox.Metadata{"a": "1", "b": "2", "c": "2"},
		timebox.MetadataFrom(ctx2))
	assert.Equal(t, timebox.Metadata{"a": "1", "b": "1"}, timebox.MetadataFrom(ctx1))
}

func TestConfigRetryTimeoutOverlay(t *testing.T) {
	cfg := timebox.Configure(timebox.DefaultConfig(),
		timebox.Config{RetryTimeout: -1})
	assert.EqualValues(t, -1, cfg.RetryTimeout)
	assert.Zero(t, timebox.DefaultConfig().RetryTimeout)
}
