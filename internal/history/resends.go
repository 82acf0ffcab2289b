package history

import (
	"context"
	"sync/atomic"

	"github.com/kode4food/timebox"
)

// Hooks is the timebox.Hooks to open chaos stores with (in their
// timebox.Config): for the workload an append belongs to (Run marks its
// operations' contexts), it counts the appends acknowledged only after the
// Store sent them again, and those of them that found the append stored
// already. An append outside a workload is not counted.
type Hooks struct{ timebox.NopHooks }

// resends counts a workload's re-sent appends (see Hooks).
type resends struct {
	resent, settled atomic.Int64
}

type resendsKey struct{}

// AppendEnd counts d in the workload of ctx.
func (Hooks) AppendEnd(ctx context.Context, d timebox.AppendDone) {
	c, _ := ctx.Value(resendsKey{}).(*resends)
	if c == nil || d.Err != nil || d.Sends < 2 {
		return
	}
	c.resent.Add(1)
	if d.Settled {
		c.settled.Add(1)
	}
}
