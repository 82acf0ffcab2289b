package timebox_test

import (
	"context"
	"regexp"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
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
