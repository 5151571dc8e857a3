package telemetry

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// newResource describes this process on every span and metric.
func newResource(ctx context.Context, c Config) (*resource.Resource, error) {
	attrs := semconv.ServiceName(c.ServiceName)
	opts := []resource.Option{
		resource.WithSchemaURL(semconv.SchemaURL),
		resource.WithTelemetrySDK(),
		resource.WithAttributes(attrs),
	}
	if c.Version != "" {
		opts = append(opts, resource.WithAttributes(semconv.ServiceVersion(c.Version)))
	}
	res, err := resource.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("resource: %w", err)
	}
	return res, nil
}

// newSpanExporter returns the exporter Config.Traces asks for, or nil for "none".
func newSpanExporter(ctx context.Context, c Config) (sdktrace.SpanExporter, error) {
	switch c.Traces {
	case TracesStdout:
		exp, err := stdouttrace.New(stdouttrace.WithWriter(c.TraceWriter), stdouttrace.WithPrettyPrint())
		if err != nil {
			return nil, fmt.Errorf("stdout trace exporter: %w", err)
		}
		return exp, nil
	case TracesOTLP:
		proto, err := otlpProtocol(c.Getenv)
		if err != nil {
			return nil, err
		}
		// Both exporters read OTEL_EXPORTER_OTLP_{,TRACES_}{ENDPOINT,HEADERS,
		// TIMEOUT,COMPRESSION,INSECURE,CERTIFICATE} themselves, and neither
		// dials before the first export, so a collector that is down does not
		// stop the service from starting.
		if proto == protocolGRPC {
			exp, err := otlptracegrpc.New(ctx)
			if err != nil {
				return nil, fmt.Errorf("otlp grpc trace exporter: %w", err)
			}
			return exp, nil
		}
		exp, err := otlptracehttp.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("otlp http trace exporter: %w", err)
		}
		return exp, nil
	}
	return nil, nil
}

// newPropagator is W3C trace context plus baggage: what the producers put in
// the traceparent/tracestate headers and the CloudEvents tracing extension.
func newPropagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}
