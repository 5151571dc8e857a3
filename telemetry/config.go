package telemetry

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Trace exporter choices for Config.Traces.
const (
	TracesNone   = "none"   // no exporter: spans are not recorded unless SpanProcessors are given
	TracesStdout = "stdout" // pretty-printed JSON spans on Config.TraceWriter, for development
	TracesOTLP   = "otlp"   // OTLP over HTTP or gRPC, configured by the standard OTEL_* variables
)

// Log formats for Config.LogFormat.
const (
	LogJSON = "json"
	LogText = "text"
)

// OTLP protocols, as the OTEL_EXPORTER_OTLP_PROTOCOL variable spells them.
const (
	protocolHTTP = "http/protobuf"
	protocolGRPC = "grpc"
)

// Config says how to set up telemetry. The zero value is valid: no trace
// export, JSON logs at info level on stderr, and no metrics listener.
type Config struct {
	// ServiceName is the service.name resource attribute. Default "crmshare".
	ServiceName string
	// Version is the service.version resource attribute. Empty leaves it out.
	Version string

	// Traces picks the span exporter: "otlp", "stdout" or "none". Default "none".
	// With "otlp", OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, else
	// OTEL_EXPORTER_OTLP_PROTOCOL (read through Getenv) chooses "http/protobuf"
	// (the default) or "grpc"; the exporter reads its endpoint, headers,
	// timeout and TLS settings from the process environment itself.
	Traces string
	// Getenv looks up environment variables; cmd passes os.Getenv. Nil means
	// no variables are set.
	Getenv func(string) string
	// TraceWriter receives the spans when Traces is "stdout". Default os.Stdout.
	TraceWriter io.Writer

	// MetricsAddr is the address to serve /metrics, /healthz and /readyz on,
	// e.g. "127.0.0.1:9464" or "127.0.0.1:0". Empty starts no listener;
	// Handler still serves the same routes.
	MetricsAddr string
	// ReadyTimeout bounds each ready check run by /readyz. Default 2s.
	ReadyTimeout time.Duration

	// LogFormat is "json" or "text". Default "json".
	LogFormat string
	// LogLevel is "debug", "info", "warn" or "error" (any case). Default "info".
	LogLevel string
	// LogWriter receives log lines. Default os.Stderr.
	LogWriter io.Writer

	// SpanProcessors are added to the tracer provider next to the exporter,
	// e.g. a tracetest.SpanRecorder in tests. With any of them the SDK
	// records spans even when Traces is "none".
	SpanProcessors []sdktrace.SpanProcessor
	// Readers are added to the meter provider next to the Prometheus
	// exporter, e.g. a sdkmetric.ManualReader in tests.
	Readers []sdkmetric.Reader
}

func (c *Config) setDefaults() {
	if c.ServiceName == "" {
		c.ServiceName = "crmshare"
	}
	if c.Traces == "" {
		c.Traces = TracesNone
	}
	if c.Getenv == nil {
		c.Getenv = func(string) string { return "" }
	}
	if c.TraceWriter == nil {
		c.TraceWriter = os.Stdout
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = 2 * time.Second
	}
	if c.LogFormat == "" {
		c.LogFormat = LogJSON
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.LogWriter == nil {
		c.LogWriter = os.Stderr
	}
}

// Validate reports every problem with c at once, judging empty fields by
// their defaults. Setup calls it; cmd may call it early to check a config file.
func (c *Config) Validate() error {
	d := *c
	d.setDefaults()
	c = &d
	var errs []error
	if c.ServiceName == "" {
		errs = append(errs, errors.New("service name is empty"))
	}
	switch c.Traces {
	case TracesNone, TracesStdout:
	case TracesOTLP:
		if _, err := otlpProtocol(c.Getenv); err != nil {
			errs = append(errs, err)
		}
	default:
		errs = append(errs, fmt.Errorf("traces %q: want otlp, stdout or none", c.Traces))
	}
	if _, err := envResourceAttrs(c.Getenv("OTEL_RESOURCE_ATTRIBUTES")); err != nil {
		errs = append(errs, err)
	}
	if c.ReadyTimeout < 0 {
		errs = append(errs, fmt.Errorf("ready timeout %v is negative", c.ReadyTimeout))
	}
	switch c.LogFormat {
	case LogJSON, LogText:
	default:
		errs = append(errs, fmt.Errorf("log format %q: want json or text", c.LogFormat))
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	for i, p := range c.SpanProcessors {
		if p == nil {
			errs = append(errs, fmt.Errorf("span processor %d is nil", i))
		}
	}
	for i, r := range c.Readers {
		if r == nil {
			errs = append(errs, fmt.Errorf("metric reader %d is nil", i))
		}
	}
	return errors.Join(errs...)
}

// parseLevel accepts only the four named levels so that a typo in the config
// file is an error rather than a silent "INFO+2".
func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("log level %q: want debug, info, warn or error", s)
}

// otlpProtocol picks the OTLP transport the way the OTel spec orders the
// variables: the traces-specific one wins over the general one.
func otlpProtocol(getenv func(string) string) (string, error) {
	p := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"))
	if p == "" {
		p = strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_PROTOCOL"))
	}
	switch p {
	case "", protocolHTTP:
		return protocolHTTP, nil
	case protocolGRPC:
		return protocolGRPC, nil
	}
	return "", fmt.Errorf("otlp protocol %q: want http/protobuf or grpc", p)
}
