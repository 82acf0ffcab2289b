package history

import (
	"context"
	"time"

	"github.com/kode4food/timebox/internal/faultproxy"
)

// The fault programs every proxied backend runs, so their scenarios are
// the same and their RELIABILITY.md rows compare.

// CutConnections returns a fault that cuts every connection through px,
// both sides, every 50 ms (250 ms in the long plan) for plan.Window:
// requests in flight are lost before or after the server ran them.
func CutConnections(plan Plan, px *faultproxy.Proxy) func(context.Context) error {
	return func(ctx context.Context) error {
		return Every(ctx, plan.Window, plan.Pick(50, 250)*time.Millisecond,
			func(int) error {
				px.CutAll()
				return nil
			})
	}
}

// DropReplies returns a fault that makes px forward requests and swallow
// their replies, cutting the connection, for plan.Window: four rounds in
// five drop one reply, the fifth drops every reply for a 30 ms (100 ms)
// burst. The writes may have run, but the callers cannot know; none may
// be applied twice.
func DropReplies(plan Plan, px *faultproxy.Proxy) func(context.Context) error {
	burst := plan.Pick(30, 100) * time.Millisecond
	return func(ctx context.Context) error {
		// A one-shot drop still armed when the window ends swallows one
		// more reply; the burst closing the window leaves none armed
		// unless a DropNextReply found no request during it.
		defer px.DropReplies(false)
		return Every(ctx, plan.Window, 20*time.Millisecond,
			func(round int) error {
				if round%5 < 4 {
					px.DropNextReply()
					return nil
				}
				px.DropReplies(true)
				defer px.DropReplies(false)
				return Sleep(ctx, burst)
			})
	}
}

// Delay returns a fault that makes px hold every chunk of traffic in both
// directions: 20 ms in the short plan, each of longSteps in turn in the
// long one, over plan.Window.
func Delay(
	plan Plan, px *faultproxy.Proxy, longSteps ...time.Duration,
) func(context.Context) error {
	steps := []time.Duration{20 * time.Millisecond}
	if plan.Long {
		steps = longSteps
	}
	return func(ctx context.Context) error {
		defer px.SetDelay(0)
		for _, d := range steps {
			px.SetDelay(d)
			if err := Sleep(ctx, plan.Window/time.Duration(len(steps))); err != nil {
				return err
			}
		}
		return nil
	}
}
