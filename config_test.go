package timebox_test

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/memory"
)

func TestConfigDefaultsAndOverlay(t *testing.T) {
	def := timebox.DefaultConfig()
	assert.Equal(t, timebox.Config{
		TrimEvents:    timebox.DefaultTrimEvents,
		SnapshotRatio: timebox.DefaultSnapshotRatio,
		MaxRetries:    timebox.DefaultMaxRetries,
		CacheSize:     timebox.DefaultCacheSize,
	}, def)

	cfg := timebox.Configure(def,
		timebox.Config{MaxRetries: 3},
		timebox.Config{CacheSize: 7, TrimEvents: true},
		timebox.Config{MaxRetries: 5},
	)
	assert.Equal(t, 5, cfg.MaxRetries)
	assert.Equal(t, 7, cfg.CacheSize)
	assert.True(t, cfg.TrimEvents)
	assert.Equal(t, timebox.DefaultSnapshotRatio, cfg.SnapshotRatio)
	assert.Equal(t, 9, timebox.Configure(def,
		timebox.Config{SnapshotMinEvents: 9}, timebox.Config{}).SnapshotMinEvents)
}

func TestConfigValidateOrder(t *testing.T) {
	ok := timebox.DefaultConfig()
	require.NoError(t, ok.Validate())
	for _, tc := range []struct {
		cfg  timebox.Config
		want error
	}{
		{timebox.Config{SnapshotRatio: -1, MaxRetries: -1, CacheSize: -1}, timebox.ErrInvalidSnapshotRatio},
		{timebox.Config{SnapshotRatio: 1, MaxRetries: 0, CacheSize: -1}, timebox.ErrInvalidMaxRetries},
		{timebox.Config{SnapshotRatio: 1, MaxRetries: 1, CacheSize: 0, SnapshotMinEvents: -1}, timebox.ErrInvalidCacheSize},
		{timebox.Config{SnapshotRatio: 1, MaxRetries: 1, CacheSize: 1, SnapshotMinEvents: -1, CommandWindow: -1}, timebox.ErrInvalidSnapshotMinEvents},
		{timebox.Config{SnapshotRatio: math.NaN(), MaxRetries: 1, CacheSize: 1}, timebox.ErrInvalidSnapshotRatio},
		{timebox.Config{SnapshotRatio: 1, MaxRetries: 1, CacheSize: 1, CommandWindow: -1}, timebox.ErrInvalidCommandWindow},
	} {
		assert.ErrorIs(t, tc.cfg.Validate(), tc.want)
	}
}

func TestNewStoreRejectsBadInput(t *testing.T) {
	s, err := timebox.NewStore(nil, timebox.Config{})
	assert.Nil(t, s)
	assert.ErrorIs(t, err, timebox.ErrBackendRequired)

	s, err = memory.NewPersistence().NewStore(timebox.Config{MaxRetries: -2})
	assert.Nil(t, s)
	assert.ErrorIs(t, err, timebox.ErrInvalidMaxRetries)
}

func TestAggregateID(t *testing.T) {
	id := timebox.NewAggregateID("order", "1")
	assert.Equal(t, `["order","1"]`, id.String())
	assert.True(t, id.Equal(timebox.NewAggregateID("order", "1")))
	assert.False(t, id.Equal(timebox.NewAggregateID("order:1")))
	assert.True(t, id.HasPrefix(timebox.NewAggregateID("order")))
	assert.True(t, id.HasPrefix(nil))
	assert.False(t, id.HasPrefix(timebox.NewAggregateID("ord")))
	assert.False(t, id.HasPrefix(timebox.NewAggregateID("order", "1", "2")))
	assert.ErrorIs(t, timebox.AggregateID(nil).Validate(), timebox.ErrInvalidAggregateID)
	assert.ErrorIs(t, timebox.NewAggregateID("a", "").Validate(), timebox.ErrInvalidAggregateID)
}
