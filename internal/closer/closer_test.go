package closer_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/closer"
)

func TestFlag(t *testing.T) {
	var f closer.Flag
	assert.NoError(t, f.Check())
	assert.False(t, f.Swap(true), "the first Close")
	assert.ErrorIs(t, f.Check(), timebox.ErrClosed)
	assert.True(t, f.Swap(true), "a second Close")
	assert.ErrorIs(t, f.Check(), timebox.ErrClosed)
}
