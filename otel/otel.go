// Package otel reports a Timebox store's commands, appends, conflicts,
// loads and snapshots to OpenTelemetry, as a timebox.Hooks:
//
//	hooks, err := otel.New(otel.Config{})
//	store, err := memory.NewPersistence().NewStore(timebox.Config{Hooks: hooks})
//
// Spans: "timebox.exec" for each Executor command, and "timebox.append"
// for each append attempt (and for Store.AppendEvents), and
// "timebox.load" / "timebox.snapshot" for state rebuilt from the store and
// snapshots stored. Commands queued on one aggregate are committed
// together by the first of them: its exec span is the parent of the
// batch's loads and appends, and the others' exec spans have none (their
// timebox.attempts and timebox.batch.size say how they were committed).
// Their attributes: timebox.backend, timebox.aggregate.type,
// timebox.outcome, and where they apply timebox.attempts,
// timebox.batch.size (commands committed together), timebox.append.events,
// timebox.load.events and timebox.load.snapshot. A conflict is an event
// on the current span. A span whose outcome is a failure has status Error;
// "skipped" (a snapshot the backend did not store because the aggregate
// had moved on) is not one.
//
// Metrics (attributes timebox.backend, timebox.aggregate.type and, on the
// outcome-bearing ones, timebox.outcome):
//
//	timebox.commands          counter   Exec calls finished
//	timebox.command.duration  histogram seconds per Exec
//	timebox.appends           counter   appends sent
//	timebox.append.duration   histogram seconds per append
//	timebox.append.batch.size histogram events per append
//	timebox.conflicts         counter   version conflicts met by Executors
//	timebox.retries           counter   conflicts the Executor retried
//	timebox.unknown_outcomes  counter   appends whose outcome is unknown
//	timebox.loads             counter   states rebuilt from the store
//	timebox.load.events       histogram events read after the snapshot
//	timebox.snapshots         counter   snapshots stored or offered
//
// Only this package imports OpenTelemetry: the timebox package and its
// backends do not depend on it.
package otel

import (
	"context"
	"time"

	gotel "go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/kode4food/timebox"
)

// ScopeName is the instrumentation scope of the tracer and meter.
const ScopeName = "github.com/kode4food/timebox/otel"

// Attribute keys set on spans and metrics.
const (
	AttrBackend       = attribute.Key("timebox.backend")
	AttrAggregateType = attribute.Key("timebox.aggregate.type")
	AttrOutcome       = attribute.Key("timebox.outcome")
	AttrAttempts      = attribute.Key("timebox.attempts")
	AttrBatchSize     = attribute.Key("timebox.batch.size")
	AttrAppendEvents  = attribute.Key("timebox.append.events")
	AttrLoadEvents    = attribute.Key("timebox.load.events")
	AttrLoadSnapshot  = attribute.Key("timebox.load.snapshot")
	AttrSequence      = attribute.Key("timebox.sequence")
	AttrRetry         = attribute.Key("timebox.retry")
	// AttrAppendSends and AttrAppendSettled are timebox.AppendDone's
	// Sends and Settled, on the append span.
	AttrAppendSends   = attribute.Key("timebox.append.sends")
	AttrAppendSettled = attribute.Key("timebox.append.settled")
)

// Config chooses the providers; a nil one means OpenTelemetry's global
// provider at the time New is called.
type Config struct {
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
}

// Hooks implements timebox.Hooks with OpenTelemetry spans and metrics. It
// is safe for concurrent use; one Hooks may serve many stores.
type Hooks struct {
	tracer trace.Tracer

	commands, appends, conflicts, retries metric.Int64Counter
	unknown, loads, snapshots             metric.Int64Counter
	commandDuration, appendDuration       metric.Float64Histogram
	batchSize, loadEvents                 metric.Int64Histogram
}

var _ timebox.Hooks = (*Hooks)(nil)

// New returns Hooks on cfg's providers. It fails only when the meter
// refuses to create an instrument.
func New(cfg Config) (*Hooks, error) {
	tp, mp := cfg.TracerProvider, cfg.MeterProvider
	if tp == nil {
		tp = gotel.GetTracerProvider()
	}
	if mp == nil {
		mp = gotel.GetMeterProvider()
	}
	m := mp.Meter(ScopeName)
	h := &Hooks{tracer: tp.Tracer(ScopeName)}
	var errs [11]error
	h.commands, errs[0] = m.Int64Counter("timebox.commands",
		metric.WithDescription("Exec calls finished"), metric.WithUnit("{command}"))
	h.appends, errs[1] = m.Int64Counter("timebox.appends",
		metric.WithDescription("appends sent to the backend"), metric.WithUnit("{append}"))
	h.conflicts, errs[2] = m.Int64Counter("timebox.conflicts",
		metric.WithDescription("version conflicts met by Executors"), metric.WithUnit("{conflict}"))
	h.retries, errs[3] = m.Int64Counter("timebox.retries",
		metric.WithDescription("conflicts an Executor retried"), metric.WithUnit("{retry}"))
	h.unknown, errs[4] = m.Int64Counter("timebox.unknown_outcomes",
		metric.WithDescription("appends whose outcome is unknown"), metric.WithUnit("{append}"))
	h.loads, errs[5] = m.Int64Counter("timebox.loads",
		metric.WithDescription("states rebuilt from the store"), metric.WithUnit("{load}"))
	h.snapshots, errs[6] = m.Int64Counter("timebox.snapshots",
		metric.WithDescription("snapshots stored or offered"), metric.WithUnit("{snapshot}"))
	h.commandDuration, errs[7] = m.Float64Histogram("timebox.command.duration",
		metric.WithDescription("time per Exec call"), metric.WithUnit("s"))
	h.appendDuration, errs[8] = m.Float64Histogram("timebox.append.duration",
		metric.WithDescription("time per append"), metric.WithUnit("s"))
	h.batchSize, errs[9] = m.Int64Histogram("timebox.append.batch.size",
		metric.WithDescription("events per append"), metric.WithUnit("{event}"))
	h.loadEvents, errs[10] = m.Int64Histogram("timebox.load.events",
		metric.WithDescription("events read after the snapshot per load"), metric.WithUnit("{event}"))
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return h, nil
}

func scopeAttrs(sc timebox.Scope, more ...attribute.KeyValue) []attribute.KeyValue {
	return append([]attribute.KeyValue{
		AttrBackend.String(sc.Backend),
		AttrAggregateType.String(sc.AggregateType),
	}, more...)
}

func endSpan(span trace.Span, out timebox.Outcome, err error, attrs ...attribute.KeyValue) {
	span.SetAttributes(append(attrs, AttrOutcome.String(string(out)))...)
	if err != nil && out != timebox.OutcomeOK {
		span.RecordError(err)
		span.SetStatus(codes.Error, string(out))
	}
	span.End()
}

// CommandStart starts the "timebox.exec" span.
func (h *Hooks) CommandStart(ctx context.Context, info timebox.CommandInfo) context.Context {
	ctx, _ = h.tracer.Start(ctx, "timebox.exec",
		trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(scopeAttrs(info.Scope)...))
	return ctx
}

// CommandEnd ends the "timebox.exec" span and counts the command.
func (h *Hooks) CommandEnd(ctx context.Context, info timebox.CommandDone) {
	endSpan(trace.SpanFromContext(ctx), info.Outcome, info.Err,
		AttrAttempts.Int(info.Attempts), AttrBatchSize.Int(info.BatchSize))
	set := metric.WithAttributes(scopeAttrs(info.Scope, AttrOutcome.String(string(info.Outcome)))...)
	h.commands.Add(ctx, 1, set)
	h.commandDuration.Record(ctx, info.Duration.Seconds(), set)
}

// AppendStart starts the "timebox.append" span.
func (h *Hooks) AppendStart(ctx context.Context, info timebox.AppendInfo) context.Context {
	ctx, _ = h.tracer.Start(ctx, "timebox.append",
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(scopeAttrs(info.Scope,
			AttrAppendEvents.Int(info.Events),
			AttrSequence.Int64(info.ExpectedSequence))...))
	return ctx
}

// AppendEnd ends the "timebox.append" span and records the append.
func (h *Hooks) AppendEnd(ctx context.Context, info timebox.AppendDone) {
	span := trace.SpanFromContext(ctx)
	span.SetAttributes(AttrAppendSends.Int(info.Sends),
		AttrAppendSettled.Bool(info.Settled))
	endSpan(span, info.Outcome, info.Err)
	set := metric.WithAttributes(scopeAttrs(info.Scope, AttrOutcome.String(string(info.Outcome)))...)
	h.appends.Add(ctx, 1, set)
	h.appendDuration.Record(ctx, info.Duration.Seconds(), set)
	h.batchSize.Record(ctx, int64(info.Events), set)
	if info.Outcome == timebox.OutcomeUnknown {
		h.unknown.Add(ctx, 1, metric.WithAttributes(scopeAttrs(info.Scope)...))
	}
}

// Conflict adds a "timebox.conflict" event to the current span and counts
// the conflict and, when the Executor retries, the retry.
func (h *Hooks) Conflict(ctx context.Context, info timebox.ConflictInfo) {
	trace.SpanFromContext(ctx).AddEvent("timebox.conflict", trace.WithAttributes(
		AttrAttempts.Int(info.Attempt), AttrRetry.Bool(info.Retry),
		attribute.Int64("timebox.expected_sequence", info.ExpectedSequence),
		attribute.Int64("timebox.actual_sequence", info.ActualSequence)))
	set := metric.WithAttributes(scopeAttrs(info.Scope)...)
	h.conflicts.Add(ctx, 1, set)
	if info.Retry {
		h.retries.Add(ctx, 1, set)
	}
}

// Load records a "timebox.load" span covering the load, and counts it.
func (h *Hooks) Load(ctx context.Context, info timebox.LoadInfo) {
	out := h.spanAfter(ctx, "timebox.load", info.Duration, info.Err,
		scopeAttrs(info.Scope,
			AttrLoadSnapshot.Bool(info.Snapshot), AttrLoadEvents.Int(info.Events)))
	set := metric.WithAttributes(scopeAttrs(info.Scope,
		AttrLoadSnapshot.Bool(info.Snapshot), AttrOutcome.String(string(out)))...)
	h.loads.Add(ctx, 1, set)
	h.loadEvents.Record(ctx, int64(info.Events), set)
}

// SnapshotSaved records a "timebox.snapshot" span covering the save, and
// counts it; a conditional snapshot the backend did not store
// (info.Skipped) has the outcome "skipped" on both.
func (h *Hooks) SnapshotSaved(ctx context.Context, info timebox.SnapshotInfo) {
	err := info.Err
	if info.Skipped {
		err = timebox.ErrSnapshotSkipped
	}
	out := h.spanAfter(ctx, "timebox.snapshot", info.Duration, err,
		scopeAttrs(info.Scope, AttrSequence.Int64(info.Sequence)))
	h.snapshots.Add(ctx, 1, metric.WithAttributes(
		scopeAttrs(info.Scope, AttrOutcome.String(string(out)))...))
}

// spanAfter records a span named name that ended now after d, and returns
// err's outcome class.
func (h *Hooks) spanAfter(
	ctx context.Context, name string, d time.Duration, err error,
	attrs []attribute.KeyValue,
) timebox.Outcome {
	end := time.Now()
	_, span := h.tracer.Start(ctx, name,
		trace.WithTimestamp(end.Add(-d)), trace.WithAttributes(attrs...))
	out := timebox.OutcomeOf(err)
	span.SetAttributes(AttrOutcome.String(string(out)))
	if err != nil && out != timebox.OutcomeSkipped {
		span.RecordError(err)
		span.SetStatus(codes.Error, string(out))
	}
	span.End(trace.WithTimestamp(end))
	return out
}
