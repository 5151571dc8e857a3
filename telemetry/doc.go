// Package telemetry sets up the OpenTelemetry SDK (traces and metrics), the
// Prometheus /metrics endpoint, the /healthz and /readyz probes, and the slog
// handler that stamps trace and span IDs on log lines and redacts secrets.
//
// Setup returns a *Telemetry that hands out providers, a logger and a
// propagator, and a Shutdown that flushes everything. It does not set the OTel
// globals; cmd may do that once for third-party instrumentation.
//
// This is the only package that imports the OTel SDK and exporters. Every other
// package uses the OTel API (otel/trace, otel/metric) and works with nil
// (noop) providers. It knows nothing of NATS, Zoho, CloudEvents or rules, and
// it reads no environment variables itself: cmd passes os.Getenv in
// Config.Getenv, through which it also reads OTEL_RESOURCE_ATTRIBUTES and
// OTEL_SERVICE_NAME for the resource. The OTLP exporters and the SDK read
// their own standard OTEL_* variables (endpoint, headers, timeout, sampler,
// batch sizes).
//
// # Metric names
//
// Metrics go out through the OTel Prometheus exporter with the
// UnderscoreEscapingWithSuffixes translation and without scope labels, so an
// instrument named "crmshare.events" (unit "{event}" or "") is scraped as
// crmshare_events_total, and a histogram "crmshare.event.duration" with unit
// "s" as crmshare_event_duration_seconds. Name instruments without unit or
// _total suffixes and let the exporter add them. Histograms that bring no
// bucket advice get boundaries in seconds (5ms to 60s) rather than the SDK's
// millisecond defaults.
package telemetry
