package timebox

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type joinKey struct{}

func TestJoinedContextEndsWithTheLastCall(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(cancels []context.CancelFunc)
		want error
	}{
		{"AllCancelled", func(cs []context.CancelFunc) { cs[0](); cs[1]() }, context.Canceled},
		{"DeadlineLast", func(cs []context.CancelFunc) { cs[0]() }, context.DeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			first, c1 := context.WithCancel(context.WithValue(context.Background(), joinKey{}, "v"))
			second, c2 := context.WithCancel(context.Background())
			late := time.Now().Add(time.Hour)
			third, c3 := context.WithDeadline(context.Background(), late)
			defer c3()
			ctxs := []context.Context{first, second, third}
			if tc.want == context.DeadlineExceeded {
				var c context.CancelFunc
				third, c = context.WithTimeout(context.Background(), 10*time.Millisecond)
				defer c()
				ctxs = []context.Context{first, third}
			} else {
				c3()
			}
			j, release := joinContexts(ctxs)
			defer release()
			require.Equal(t, "v", j.Value(joinKey{}))
			derived, cancel := context.WithCancel(j)
			defer cancel()
			require.NoError(t, j.Err())

			tc.end([]context.CancelFunc{c1, c2})
			select {
			case <-j.Done():
			case <-time.After(30 * time.Second):
				t.Fatal("joined context not done")
			}
			require.ErrorIs(t, j.Err(), tc.want)
			select {
			case <-derived.Done():
			case <-time.After(30 * time.Second):
				t.Fatal("derived context not done")
			}
			require.ErrorIs(t, derived.Err(), tc.want)
		})
	}
}

func TestJoinedContextDeadlineAndErrNow(t *testing.T) {
	now := time.Now()
	a, ca := context.WithDeadline(context.Background(), now.Add(time.Hour))
	b, cb := context.WithDeadline(context.Background(), now.Add(2*time.Hour))
	j, release := joinContexts([]context.Context{a, b})
	defer release()
	dl, ok := j.Deadline()
	require.True(t, ok)
	require.True(t, dl.Equal(now.Add(2*time.Hour)))

	ca()
	cb()
	// Err sees the calls' contexts at once, before any callback has run.
	require.ErrorIs(t, j.Err(), context.Canceled)
	<-j.Done()

	c, cc := context.WithCancel(context.Background())
	defer cc()
	j2, release2 := joinContexts([]context.Context{c, context.Background()})
	defer release2()
	require.Nil(t, j2.Done())
	_, ok = j2.Deadline()
	require.False(t, ok)
}

func TestJoinedContextAfterFuncRace(t *testing.T) {
	for range 50 {
		a, ca := context.WithCancel(context.Background())
		b, cb := context.WithCancel(context.Background())
		j, release := joinContexts([]context.Context{a, b})
		var wg sync.WaitGroup
		var ran sync.WaitGroup
		for range 4 {
			ran.Add(1)
			wg.Go(func() { context.AfterFunc(j, ran.Done) })
		}
		wg.Go(ca)
		wg.Go(cb)
		wg.Wait()
		done := make(chan struct{})
		go func() { ran.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("AfterFunc callbacks did not all run")
		}
		assert.ErrorIs(t, j.Err(), context.Canceled)
		release()
	}
}
