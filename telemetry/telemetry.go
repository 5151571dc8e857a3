package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Telemetry owns the tracer and meter providers, the logger and the
// metrics/health HTTP listener. Its methods are safe for concurrent use.
type Telemetry struct {
	tp         trace.TracerProvider
	sdkTP      *sdktrace.TracerProvider // nil when tracing is off
	mp         *sdkmetric.MeterProvider
	logger     *slog.Logger
	propagator propagation.TextMapPropagator
	ready      *readiness
	mux        *http.ServeMux

	srv    *http.Server // nil without MetricsAddr
	ln     net.Listener
	served chan struct{} // closed when the serve goroutine returns

	shutdownOnce sync.Once
	shutdownErr  error
}

// Setup builds the providers, logger and HTTP handler that c describes and,
// when c.MetricsAddr is set, starts serving /metrics, /healthz and /readyz.
// It sets no OTel globals. The caller must call Shutdown.
func Setup(ctx context.Context, c Config) (*Telemetry, error) {
	c.setDefaults()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("telemetry config: %w", err)
	}
	level, _ := parseLevel(c.LogLevel) // checked by Validate
	t := &Telemetry{
		logger:     slog.New(newLogHandler(c.LogWriter, c.LogFormat, level)),
		propagator: newPropagator(),
		ready:      &readiness{timeout: c.ReadyTimeout, checks: make(map[string]func(context.Context) error)},
	}

	res, err := newResource(ctx, c)
	if err != nil {
		return nil, err
	}
	exp, err := newSpanExporter(ctx, c)
	if err != nil {
		return nil, err
	}
	if exp == nil && len(c.SpanProcessors) == 0 {
		// The noop tracer still passes an incoming span context through to
		// child contexts, so logs keep the producer's trace_id.
		t.tp = noop.NewTracerProvider()
	} else {
		opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
		if exp != nil {
			opts = append(opts, sdktrace.WithBatcher(exp))
		}
		for _, p := range c.SpanProcessors {
			opts = append(opts, sdktrace.WithSpanProcessor(p))
		}
		t.sdkTP = sdktrace.NewTracerProvider(opts...)
		t.tp = t.sdkTP
	}

	promExp, metricsHandler, err := newPrometheus(t.logger)
	if err != nil {
		return nil, errors.Join(err, t.shutdownTracing(ctx))
	}
	mopts := []sdkmetric.Option{sdkmetric.WithResource(res), sdkmetric.WithReader(promExp)}
	for _, r := range c.Readers {
		mopts = append(mopts, sdkmetric.WithReader(r))
	}
	t.mp = sdkmetric.NewMeterProvider(mopts...)

	t.mux = http.NewServeMux()
	t.mux.Handle("GET /metrics", metricsHandler)
	t.mux.HandleFunc("GET /healthz", healthz)
	t.mux.Handle("GET /readyz", t.ready)

	if c.MetricsAddr != "" {
		ln, err := net.Listen("tcp", c.MetricsAddr)
		if err != nil {
			err = fmt.Errorf("metrics listener: %w", err)
			return nil, errors.Join(err, t.shutdownProviders(ctx))
		}
		t.ln = ln
		t.srv = &http.Server{
			Handler:           t.mux,
			ReadHeaderTimeout: 5 * time.Second,
			ErrorLog:          slog.NewLogLogger(t.logger.Handler(), slog.LevelWarn),
		}
		t.served = make(chan struct{})
		go t.serve()
	}
	return t, nil
}

// serve runs the listener until Shutdown. An accept loop that dies on its own
// is logged here, as it happens, since no caller is waiting for the error.
func (t *Telemetry) serve() {
	defer close(t.served)
	if err := t.srv.Serve(t.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		t.logger.Error("metrics listener stopped", "addr", t.ln.Addr().String(), "error", err)
	}
}

// TracerProvider returns the provider to start spans with: the SDK provider,
// or a noop one when Traces is "none" and no SpanProcessors were given.
func (t *Telemetry) TracerProvider() trace.TracerProvider { return t.tp }

// MeterProvider returns the provider whose instruments show up on /metrics.
func (t *Telemetry) MeterProvider() metric.MeterProvider { return t.mp }

// Logger returns the logger built from the Log* settings: it redacts
// secret-looking attributes and adds trace_id and span_id from the ctx given
// to the *Context logging methods.
func (t *Telemetry) Logger() *slog.Logger { return t.logger }

// Propagator returns the W3C trace context and baggage propagator.
func (t *Telemetry) Propagator() propagation.TextMapPropagator { return t.propagator }

// Handler returns the mux with GET /metrics, /healthz and /readyz, for serving
// on a listener of the caller's own when MetricsAddr is empty.
func (t *Telemetry) Handler() http.Handler { return t.mux }

// Addr returns the address the listener is bound to, with the real port when
// MetricsAddr asked for port 0, or "" when there is no listener.
func (t *Telemetry) Addr() string {
	if t.ln == nil {
		return ""
	}
	return t.ln.Addr().String()
}

// AddReadyCheck registers fn under name for /readyz, replacing any check of
// that name; a nil fn removes it. fn gets a ctx with a short deadline
// (Config.ReadyTimeout) and must return once it is done. Its error text is
// shown to whoever asks /readyz, so it must hold no secrets. With no checks
// registered /readyz answers 200.
func (t *Telemetry) AddReadyCheck(name string, fn func(ctx context.Context) error) {
	t.ready.add(name, fn)
}

// Shutdown stops the listener, then flushes and shuts down the tracer and
// meter providers, all bounded by ctx. It returns every error joined. Calls
// after the first return the first call's result.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	t.shutdownOnce.Do(func() {
		var errs []error
		if t.srv != nil {
			if err := t.srv.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("metrics listener: %w", err))
				_ = t.srv.Close() // ctx ran out: drop the slow scrapes
			}
			<-t.served
		}
		errs = append(errs, t.shutdownProviders(ctx))
		t.shutdownErr = errors.Join(errs...)
	})
	return t.shutdownErr
}

func (t *Telemetry) shutdownProviders(ctx context.Context) error {
	var errs []error
	errs = append(errs, t.shutdownTracing(ctx))
	if t.mp != nil {
		if err := t.mp.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("meter provider: %w", err))
		}
	}
	return errors.Join(errs...)
}

func (t *Telemetry) shutdownTracing(ctx context.Context) error {
	if t.sdkTP == nil {
		return nil
	}
	if err := t.sdkTP.Shutdown(ctx); err != nil {
		return fmt.Errorf("tracer provider: %w", err)
	}
	return nil
}
