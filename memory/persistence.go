package memory

import (
	"maps"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/codec"
)

// Persistence is an in-memory timebox.Backend. It stores copies of what it
// is given and hands out copies, so no caller can change stored history.
type Persistence struct {
	mu     sync.RWMutex
	closed bool
	done   chan struct{}
	ready  chan struct{}

	aggs   map[string]*aggregate
	keys   *btree[string]                       // the keys of aggs
	status map[string]*btree[statusEntry]       // status → (entered, key)
	labels map[string]map[string]*btree[string] // label → value → keys

	archive  []*timebox.ArchiveRecord
	streamID int64
	notify   chan struct{} // closed and replaced when archive grows

	feed       feedLog       // every commit's events, in commit order
	feedNotify chan struct{} // closed and replaced when feed grows
	consumers  map[string][]partition
	epochs     uint64 // the last consumer epoch given
}

// aggregate is one aggregate's live records.
type aggregate struct {
	id         timebox.AggregateID
	head       int64
	events     []*timebox.Event // ascending by Sequence, maybe not from 0
	snapshot   []byte
	snapSeq    int64
	status     string
	statusTime time.Time
	labels     map[string]string
}

var (
	_ timebox.Backend  = (*Persistence)(nil)
	_ timebox.Archiver = (*Persistence)(nil)
	_ timebox.Feeder   = (*Persistence)(nil)

	_ timebox.ConsumerBackend = (*Persistence)(nil)
)

// NewPersistence returns an empty, ready in-memory backend.
func NewPersistence() *Persistence {
	ready := make(chan struct{})
	close(ready)
	return &Persistence{
		done:   make(chan struct{}),
		ready:  ready,
		aggs:   map[string]*aggregate{},
		keys:   newBTree(strings.Compare),
		status: map[string]*btree[statusEntry]{},
		labels: map[string]map[string]*btree[string]{},
		notify: make(chan struct{}),

		feedNotify: make(chan struct{}),
		consumers:  map[string][]partition{},
	}
}

// NewStore returns a timebox.Store on p; closing the Store closes p.
func (p *Persistence) NewStore(cfg timebox.Config) (*timebox.Store, error) {
	return timebox.NewStore(p, cfg)
}

// Ready returns a closed channel: memory is ready at once.
func (p *Persistence) Ready() <-chan struct{} {
	return p.ready
}

// Close drops nothing but refuses further calls with timebox.ErrClosed and
// wakes blocked archive consumers. A second Close returns nil.
func (p *Persistence) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.closed = true
		close(p.done)
	}
	return nil
}

// read runs fn under the read lock, unless p is closed.
func (p *Persistence) read(fn func() error) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return timebox.ErrClosed
	}
	return fn()
}

// write runs fn under the write lock, unless p is closed.
func (p *Persistence) write(fn func() error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return timebox.ErrClosed
	}
	return fn()
}

func key(id timebox.AggregateID) string {
	return codec.EncodeID(id)
}

// from returns the index of a's first event with sequence at least seq.
func (a *aggregate) from(seq int64) int {
	return sort.Search(len(a.events), func(i int) bool {
		return a.events[i].Sequence >= seq
	})
}

// eventsFrom returns copies of a's events with sequence at least seq,
// sharing one copy of a's ID.
func (a *aggregate) eventsFrom(seq int64) []*timebox.Event {
	return copyEvents(a.events[a.from(seq):], a.id.Clone())
}

// copyEvents returns copies of evs, in aggregate id, that share no memory
// with evs (see copyBlock), and one slice of pointers to them.
func copyEvents(evs []*timebox.Event, id timebox.AggregateID) []*timebox.Event {
	block := copyBlock(evs, id)
	res := make([]*timebox.Event, len(block))
	for i := range block {
		res[i] = &block[i]
	}
	return res
}

// copyBlock returns copies of evs, in aggregate id, that share no memory
// with evs or with id's caller, made with two allocations for the whole
// batch (the events, and all their data, each event's data a capped slice
// of it, so that appending to one never writes over the next) and one map
// per event that has metadata.
func copyBlock(evs []*timebox.Event, id timebox.AggregateID) []timebox.Event {
	size := 0
	for _, ev := range evs {
		size += len(ev.Data)
	}
	block := make([]timebox.Event, len(evs))
	data := make([]byte, 0, size)
	for i, ev := range evs {
		var d []byte
		if len(ev.Data) > 0 {
			off := len(data)
			data = append(data, ev.Data...)
			d = data[off:len(data):len(data)]
		}
		block[i] = timebox.Event{
			Timestamp:   ev.Timestamp,
			Sequence:    ev.Sequence,
			Type:        ev.Type,
			AggregateID: id,
			Data:        d,
			ID:          ev.ID,
			Metadata:    maps.Clone(ev.Metadata),
		}
	}
	return block
}
