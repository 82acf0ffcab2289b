package timebox_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
)

func TestConfigStrictnessOverlay(t *testing.T) {
	def := timebox.DefaultConfig()
	assert.False(t, def.SkipUndecodable)
	assert.False(t, def.RequireAppliers)
	got := timebox.Configure(def,
		timebox.Config{SkipUndecodable: true},
		timebox.Config{RequireAppliers: true},
		timebox.Config{MaxRetries: 3},
	)
	assert.True(t, got.SkipUndecodable)
	assert.True(t, got.RequireAppliers)
	assert.Equal(t, 3, got.MaxRetries)
	assert.NoError(t, got.Validate())
}

// Outside an Executor, an Applier made by MakeApplier cannot return its
// decode error, so it panics with it rather than skip the event silently.
func TestMakeApplierUndecodableOutsideExecutor(t *testing.T) {
	app := timebox.MakeApplier(func(n int, _ *timebox.Event, d int) int {
		return n + d
	})
	ev := &timebox.Event{Sequence: 4, Type: "add", Data: json.RawMessage(`"x"`)}
	defer func() {
		r := recover()
		err, ok := r.(error)
		require.True(t, ok, "panics with an error, got %v", r)
		assert.True(t, errors.Is(err, timebox.ErrInvalidEvent))
		assert.ErrorContains(t, err, `"add" event at sequence 4`)
	}()
	app(1, ev)
	t.Fatal("no panic")
}

func TestMakeApplierDecodes(t *testing.T) {
	app := timebox.MakeApplier(func(n int, _ *timebox.Event, d int) int {
		return n + d
	})
	assert.Equal(t, 3, app(1, &timebox.Event{Type: "add", Data: json.RawMessage(`2`)}))
}
