// Package telemetry sets up the OpenTelemetry SDK (traces and metrics), the
// Prometheus /metrics endpoint, the /healthz and /readyz probes, and the slog
// handler that stamps trace and span IDs on log lines. It returns providers and a
// Shutdown; every other package uses only the OTel API.
package telemetry
