package telemetry

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// newResource describes this process on every span and metric: the
// attributes of OTEL_RESOURCE_ATTRIBUTES, then service.name (OTEL_SERVICE_NAME
// when set, else Config.ServiceName) and service.version.
func newResource(ctx context.Context, c Config) (*resource.Resource, error) {
	env, err := envResourceAttrs(c.Getenv("OTEL_RESOURCE_ATTRIBUTES"))
	if err != nil {
		return nil, err
	}
	name := c.ServiceName
	if n := strings.TrimSpace(c.Getenv("OTEL_SERVICE_NAME")); n != "" {
		name = n
	}
	opts := []resource.Option{
		resource.WithSchemaURL(semconv.SchemaURL),
		resource.WithTelemetrySDK(),
		resource.WithAttributes(env...),
		resource.WithAttributes(semconv.ServiceName(name)),
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

// envResourceAttrs parses OTEL_RESOURCE_ATTRIBUTES: comma-separated
// key=value pairs, values percent-encoded. A malformed value is an error, as
// the OpenTelemetry specification asks that it be discarded whole.
func envResourceAttrs(v string) ([]attribute.KeyValue, error) {
	var out []attribute.KeyValue
	for p := range strings.SplitSeq(v, ",") {
		if strings.TrimSpace(p) == "" {
			continue
		}
		k, val, ok := strings.Cut(p, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %q is not key=value", strings.TrimSpace(p))
		}
		dec, err := url.PathUnescape(strings.TrimSpace(val))
		if err != nil {
			return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: value of %s: %w", k, err)
		}
		out = append(out, attribute.String(k, dec))
	}
	return out, nil
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
