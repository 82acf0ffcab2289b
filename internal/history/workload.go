package history

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kode4food/timebox"
)

// Defaults for the zero fields of a Workload.
const (
	DefaultAggregates   = 3
	DefaultWorkers      = 4
	DefaultDuration     = 2 * time.Second
	DefaultMaxBatch     = 3
	DefaultReadEvery    = 5
	DefaultPace         = time.Millisecond
	DefaultOpTimeout    = 5 * time.Second
	DefaultCheckTimeout = 30 * time.Second
	DefaultRecoverWait  = 30 * time.Second
)

// Workload describes a run of Run: Workers goroutines per store write
// batches to a few hot aggregates and read them back, while Fault runs
// once, a third of the way in.
type Workload struct {
	// Stores are the stores written through: several stores on one backend
	// act as several processes. Required.
	Stores []*timebox.Store
	// Audit is the store the final logs are read from; Stores[0] if nil.
	Audit *timebox.Store
	// Aggregates is the number of hot aggregates; all workers share them.
	Aggregates int
	// Workers is the number of goroutines per store.
	Workers int
	// Duration is the length of the run without a fault. With one, the run
	// lasts until at least Duration/3 after the fault ends, and on until a
	// write started after the fault is acknowledged or RecoverWait has
	// passed since the fault ended, whichever comes first: a loaded machine
	// may take longer than Duration/3 to reconnect.
	Duration time.Duration
	// RecoverWait bounds how long the run waits after the fault for a write
	// to be acknowledged (see Duration).
	RecoverWait time.Duration
	// UseExec writes through one Executor per store (commands that raise a
	// batch); otherwise through AppendEvents at the head each worker last
	// saw, so conflicts happen.
	UseExec bool
	// MaxBatch bounds the events per write (each write has 1..MaxBatch).
	MaxBatch int
	// ReadEvery makes one operation in ReadEvery a read of the recent tail.
	ReadEvery int
	// Pace is each worker's pause between operations, which keeps the
	// history small enough to check; a failed or ambiguous call pauses ten
	// times as long.
	Pace time.Duration
	// OpTimeout bounds each call; one that runs out is Ambiguous.
	OpTimeout time.Duration
	// Fault, if set, runs once at FaultAt; the fault window lasts until it
	// returns. It must undo its fault before returning.
	Fault func(ctx context.Context) error
	// FaultAt is when the fault starts; Duration/3 if zero.
	FaultAt time.Duration
	// CheckTimeout bounds the linearizability check, and the final reads.
	CheckTimeout time.Duration
	// Seed seeds the workers' choices; 0 means a random seed.
	Seed uint64
}

// ErrNoStores is returned by Run for a Workload without stores.
var ErrNoStores = errors.New("workload has no stores")

// withDefaults returns w with its zero fields set to the defaults.
func (w Workload) withDefaults() Workload {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&w.Aggregates, DefaultAggregates)
	def(&w.Workers, DefaultWorkers)
	def(&w.MaxBatch, DefaultMaxBatch)
	def(&w.ReadEvery, DefaultReadEvery)
	defDur(&w.Duration, DefaultDuration)
	defDur(&w.Pace, DefaultPace)
	defDur(&w.OpTimeout, DefaultOpTimeout)
	defDur(&w.CheckTimeout, DefaultCheckTimeout)
	defDur(&w.RecoverWait, DefaultRecoverWait)
	defDur(&w.FaultAt, w.Duration/3)
	if w.Audit == nil && len(w.Stores) > 0 {
		w.Audit = w.Stores[0]
	}
	if w.Seed == 0 {
		w.Seed = rand.Uint64()
	}
	return w
}

// run is the state of one Run.
type run struct {
	Workload
	rec  *Recorder
	aggs []timebox.AggregateID
	// resends counts the run's re-sent appends (see Hooks).
	resends resends
	// stop is the offset at which workers stop starting operations.
	stop atomic.Int64
	// faultStart and faultEnd delimit the fault window; set before stop
	// is lowered from its initial infinity.
	faultStart, faultEnd time.Duration
	faultErr             error
	// ended is faultEnd once the fault is over, 0 before; recovered is set
	// once a write started after it is acknowledged.
	ended     atomic.Int64
	recovered atomic.Bool
}

// Run runs w and returns its Report: the counts of operations by outcome,
// the audit of the final logs read from w.Audit, porcupine's verdict, and
// throughput before, during and after the fault with the time to recover.
// It returns an error only when w is unusable or the final logs cannot be
// read; anomalies are in the Report (see Require). ctx bounds the whole
// run; cancelling it ends the run early.
func Run(ctx context.Context, w Workload) (Report, error) {
	if len(w.Stores) == 0 {
		return Report{}, ErrNoStores
	}
	r := &run{Workload: w.withDefaults(), rec: NewRecorder()}
	for i := range r.Aggregates {
		r.aggs = append(r.aggs, timebox.NewAggregateID(
			"history", timebox.ID(r.rec.nonce), timebox.ID(fmt.Sprint(i)),
		))
	}
	r.stop.Store(int64(r.Duration))
	if r.Fault != nil {
		r.stop.Store(math.MaxInt64)
	}
	var wg sync.WaitGroup
	if r.Fault != nil {
		wg.Go(func() { r.fault(ctx) })
	}
	for s, st := range r.Stores {
		var ex *timebox.Executor[State]
		if r.UseExec {
			ex = NewExecutor(st)
		}
		for i := range r.Workers {
			client := s*r.Workers + i
			wg.Go(func() { r.worker(ctx, client, st, ex) })
		}
	}
	wg.Wait()
	return r.report(ctx)
}

// fault runs the fault at FaultAt and sets the end of the run.
func (r *run) fault(ctx context.Context) {
	select {
	case <-ctx.Done():
		r.stop.Store(0)
		return
	case <-time.After(r.FaultAt):
	}
	r.faultStart = r.rec.Now()
	r.faultErr = r.Fault(ctx)
	r.faultEnd = r.rec.Now()
	r.ended.Store(int64(r.faultEnd))
	r.stop.Store(int64(max(r.Duration, r.faultEnd+r.Duration/3)))
}

// running says whether workers should start another operation: before
// stop, and after it while no write has recovered and RecoverWait has not
// passed since the fault ended.
func (r *run) running() bool {
	now := int64(r.rec.Now())
	if now < r.stop.Load() {
		return true
	}
	end := r.ended.Load()
	return end > 0 && !r.recovered.Load() && now < end+int64(r.RecoverWait)
}

// head is a worker's view of an aggregate's head.
type head struct {
	at int64
	// stale is set after a write of unknown outcome: read before writing.
	stale bool
}

// tail is how far behind the head a read starts, so reads stay short but
// still see the latest writes.
const tail = 4

// worker issues operations until the run stops.
func (r *run) worker(
	ctx context.Context, client int, st *timebox.Store, ex *timebox.Executor[State],
) {
	rng := rand.New(rand.NewPCG(r.Seed, uint64(client)))
	heads := make([]head, len(r.aggs))
	for ctx.Err() == nil && r.running() {
		a := rng.IntN(len(r.aggs))
		pause := r.Pace
		if o := r.op(ctx, rng, client, st, ex, a, &heads[a]); o == Failed || o == Ambiguous {
			pause *= 10
		}
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
	}
}

// op issues one operation on aggregate a, keeping h up to date, and
// returns its outcome.
func (r *run) op(
	ctx context.Context, rng *rand.Rand, client int, st *timebox.Store,
	ex *timebox.Executor[State], a int, h *head,
) Outcome {
	ctx, cancel := context.WithTimeout(
		context.WithValue(ctx, resendsKey{}, &r.resends), r.OpTimeout)
	defer cancel()
	id := r.aggs[a]
	if h.stale || rng.IntN(r.ReadEvery) == 0 {
		from := max(h.at-tail, 0)
		evs, err := r.rec.Read(ctx, st, client, id, from)
		if err == nil {
			h.at, h.stale = from+int64(len(evs)), false
		}
		return Classify(err)
	}
	b := r.rec.NewBatch(1 + rng.IntN(r.MaxBatch))
	// A write started after the fault ended returns after it too.
	afterFault := r.ended.Load() > 0
	if ex != nil {
		at, err := r.rec.Exec(ctx, ex, client, id, b)
		if err == nil {
			h.at = max(h.at, at+int64(b.Size))
			r.markRecovered(afterFault)
		}
		return Classify(err)
	}
	err := r.rec.Append(ctx, st, client, id, h.at, b)
	var vc *timebox.VersionConflictError
	switch {
	case err == nil:
		h.at += int64(b.Size)
		r.markRecovered(afterFault)
	case errors.As(err, &vc):
		h.at = vc.ActualSequence
	default:
		h.stale = true
	}
	return Classify(err)
}

// markRecovered records an acknowledged write that started after the fault
// ended, if afterFault.
func (r *run) markRecovered(afterFault bool) {
	if afterFault {
		r.recovered.Store(true)
	}
}

// report summarizes the run.
func (r *run) report(ctx context.Context) (Report, error) {
	ops, elapsed := r.rec.Ops(), r.rec.Now()
	ctx, cancel := context.WithTimeout(ctx, r.CheckTimeout)
	defer cancel()
	rep, err := Summarize(ctx, r.Audit, ops, r.CheckTimeout)
	if err != nil {
		return rep, err
	}
	rep.Elapsed, rep.Ops = elapsed, ops
	rep.Resent, rep.Settled = r.resends.resent.Load(), r.resends.settled.Load()
	rep.FaultErr = r.faultErr
	rep.Fault = r.Fault != nil
	if rep.Fault {
		rep.Waited = elapsed - r.faultEnd
	}
	r.throughput(&rep, ops)
	return rep, nil
}

// throughput sets the per-phase rates of acknowledged writes and the time
// to recover.
func (r *run) throughput(rep *Report, ops []Op) {
	end := rep.Elapsed
	if !rep.Fault {
		rep.Before = rate(ops, 0, end)
		return
	}
	rep.Before = rate(ops, 0, r.faultStart)
	rep.During = rate(ops, r.faultStart, r.faultEnd)
	rep.After = rate(ops, r.faultEnd, end)
	rep.Recovered = false
	for _, op := range ops {
		if op.write() && op.Outcome == OK && op.Return >= r.faultEnd &&
			(!rep.Recovered || op.Return-r.faultEnd < rep.Recovery) {
			rep.Recovered, rep.Recovery = true, op.Return-r.faultEnd
		}
	}
}

// rate returns acknowledged writes per second that returned in [from, to).
func rate(ops []Op, from, to time.Duration) float64 {
	if to-from < time.Millisecond {
		return 0
	}
	n := 0
	for _, op := range ops {
		if op.write() && op.Outcome == OK && op.Return >= from && op.Return < to {
			n++
		}
	}
	return float64(n) / (to - from).Seconds()
}
