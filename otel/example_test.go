package otel_test

import (
	"context"
	"fmt"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/memory"
	"github.com/kode4food/timebox/otel"
)

func Example() {
	// A service passes its own providers (or none, for the global ones).
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	defer func() { _ = mp.Shutdown(context.Background()) }()

	hooks, err := otel.New(otel.Config{TracerProvider: tp, MeterProvider: mp})
	if err != nil {
		panic(err)
	}
	// A high SnapshotRatio keeps background snapshots out of the output.
	store, _ := memory.NewPersistence().NewStore(timebox.Config{
		Hooks: hooks, SnapshotRatio: 1e9,
	})
	defer func() { _ = store.Close() }()

	type counter struct{ N int }
	ex := timebox.NewExecutor(store, func() counter { return counter{} },
		timebox.Appliers[counter]{
			"added": func(c counter, _ *timebox.Event) counter { c.N++; return c },
		})
	_, _ = ex.Exec(timebox.NewAggregateID("order", "1"),
		func(_ counter, ag *timebox.Aggregator[counter]) error {
			return timebox.Raise(ag, "added", 1)
		})

	for _, s := range spans.Ended() {
		fmt.Println(s.Name())
	}
	// Output:
	// timebox.load
	// timebox.append
	// timebox.exec
}
