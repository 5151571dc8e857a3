package telemetry

import (
	"io"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// BenchmarkSpan measures the tracing cost the consumer pays per event: one
// span started and ended with a few attributes, through the noop provider
// (Traces "none") and through the SDK with the batch processor in front of an
// exporter that drops everything (Traces "otlp" minus the network).
func BenchmarkSpan(b *testing.B) {
	attrs := []attribute.KeyValue{
		attribute.String("messaging.system", "nats"),
		attribute.String("messaging.destination.name", "crm.events.deal"),
		attribute.String("messaging.message.id", "E1"),
	}
	sdk := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	b.Cleanup(func() { _ = sdk.Shutdown(b.Context()) })
	providers := []struct {
		name string
		tp   trace.TracerProvider
	}{
		{name: "noop", tp: noop.NewTracerProvider()},
		{name: "sdk-batch", tp: sdk},
	}
	for _, p := range providers {
		b.Run(p.name, func(b *testing.B) {
			tracer := p.tp.Tracer("bench")
			ctx := b.Context()
			b.ReportAllocs()
			for b.Loop() {
				_, span := tracer.Start(ctx, "process crm.events.*", trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...))
				span.End()
			}
		})
	}
}

// BenchmarkLogInSpan measures one JSON log line with trace IDs and redaction,
// the other per-event cost this package adds.
func BenchmarkLogInSpan(b *testing.B) {
	tel := mustSetup(b, Config{LogWriter: io.Discard, SpanProcessors: []sdktrace.SpanProcessor{tracetest.NewSpanRecorder()}})
	ctx, span := tel.TracerProvider().Tracer("bench").Start(b.Context(), "process")
	defer span.End()
	logger := tel.Logger().With("event_id", "E1", "subject", "crm.events.deal", "module", "Deals", "record_id", "R1")
	b.ReportAllocs()
	for b.Loop() {
		logger.InfoContext(ctx, "settled", "decision", "ack", "status", 200)
	}
}
