package raft

import (
	"log/slog"
	"sync"

	"github.com/kode4food/timebox"
)

// publisher hands committed batches to a Publisher on its own goroutine,
// in order, through an unbounded queue, so a slow Publisher never stalls
// the state machine.
type publisher struct {
	fn     Publisher
	log    *slog.Logger
	mu     sync.Mutex
	cond   *sync.Cond
	queue  [][]*timebox.Event
	closed bool
	done   chan struct{}
}

func newPublisher(fn Publisher, log *slog.Logger) *publisher {
	if fn == nil {
		return nil
	}
	p := &publisher{fn: fn, log: log, done: make(chan struct{})}
	p.cond = sync.NewCond(&p.mu)
	go p.run()
	return p
}

func (p *publisher) push(batches [][]*timebox.Event) {
	p.mu.Lock()
	p.queue = append(p.queue, batches...)
	p.mu.Unlock()
	p.cond.Signal()
}

func (p *publisher) run() {
	defer close(p.done)
	for {
		p.mu.Lock()
		for len(p.queue) == 0 && !p.closed {
			p.cond.Wait()
		}
		batches := p.queue
		p.queue = nil
		p.mu.Unlock()
		if len(batches) == 0 {
			return
		}
		for _, evs := range batches {
			p.call(evs)
		}
	}
}

func (p *publisher) call(evs []*timebox.Event) {
	defer func() {
		if r := recover(); r != nil {
			p.log.Error("raft: Publisher panicked", slog.Any("panic", r))
		}
	}()
	p.fn(evs...)
}

// close delivers what is queued, then stops the goroutine.
func (p *publisher) close() {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.cond.Broadcast()
	<-p.done
}
