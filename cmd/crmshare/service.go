package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/crmshare/crmshare/consumer"
	"github.com/crmshare/crmshare/handlers"
	"github.com/crmshare/crmshare/telemetry"
	"github.com/crmshare/crmshare/zoho"
	"github.com/crmshare/crmshare/zoho/zohoemu"
)

// The share handler drives Zoho through these interfaces; the client must
// satisfy them. Only cmd sees both sides, so the check lives here.
var (
	_ handlers.Sharer    = (*zoho.Client)(nil)
	_ handlers.Directory = (*zoho.Client)(nil)
	_ consumer.Handler   = (*handlers.Handler)(nil)
	_ consumer.Keyer     = (*handlers.Handler)(nil)
	_ consumer.Coalescer = (*handlers.Handler)(nil)
)

// serviceOptions are what tests and tools change about a service beyond its
// config file.
type serviceOptions struct {
	// LogWriter receives the log lines. Default: stderr of the command.
	LogWriter io.Writer
	// TraceWriter receives spans when telemetry.traces is stdout.
	TraceWriter io.Writer
	// SpanProcessors and Readers are added to the telemetry providers (tests
	// record spans and metrics in memory with them).
	SpanProcessors []sdktrace.SpanProcessor
	Readers        []sdkmetric.Reader
	// NoListeners keeps the service from binding the metrics and ingress
	// addresses: replay and dlq run beside a live service with its config.
	NoListeners bool
	// NoConsumer connects to NATS and Zoho but creates no durable consumer:
	// publish, replay and dlq need the connection only.
	NoConsumer bool
	// NATSOnly stops after connecting to NATS: publish needs nothing else.
	NATSOnly bool
	// Consumer adjusts the consumer's config before it is built (tests
	// shorten probe intervals, replay forces).
	Consumer func(*consumer.Config)
	// Started, when set, is called once by serve after every part is up and
	// before consuming begins, so end-to-end tests can reach the running
	// service (its emulator, NATS connection and metrics address). It must
	// not block.
	Started func(*service)
}

// service is crmshare wired together: everything run starts, closed in
// reverse order by Close.
type service struct {
	cfg    *Config
	logger *slog.Logger
	tel    *telemetry.Telemetry

	natsServer *server.Server // the embedded server, or nil
	natsURL    string
	nc         *nats.Conn
	js         jetstream.JetStream

	emu    *zohoemu.Emulator // the in-process emulator, or nil
	emuURL string
	emuSrv *http.Server

	zoho     *zoho.Client
	rules    *handlers.Rules
	handler  *handlers.Handler
	consumer *consumer.Consumer

	ingressAddr string // where the HTTP ingress listens, or ""

	closers []func(ctx context.Context) error // in start order; Close runs them backwards
}

// startTool starts the part of the service a command beside it needs (opts
// says which) and returns it with the function that closes it, which waits
// at most 10s.
func startTool(ctx context.Context, cfg *Config, sio stdio, opts serviceOptions) (*service, func(), error) {
	s, err := startService(ctx, cfg, sio, opts)
	if err != nil {
		return nil, nil, err
	}
	return s, func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = s.Close(closeCtx)
	}, nil
}

// startService builds every part the config asks for. On error, what was
// already started is closed again.
func startService(ctx context.Context, cfg *Config, sio stdio, opts serviceOptions) (s *service, err error) {
	s = &service{cfg: cfg}
	defer func() {
		if err != nil {
			closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			_ = s.Close(closeCtx)
			s = nil
		}
	}()
	if opts.LogWriter == nil {
		opts.LogWriter = sio.stderr
	}
	if opts.TraceWriter == nil {
		opts.TraceWriter = sio.stdout
	}

	metricsAddr := cfg.Telemetry.MetricsAddr
	traces := cfg.Telemetry.Traces
	if opts.NoListeners {
		metricsAddr = ""
		// A tool's stdout is its output (publish results, dead-letter tables):
		// spans printed there would bury it. OTLP export stays as configured.
		if traces == telemetry.TracesStdout {
			traces = telemetry.TracesNone
		}
	}
	s.tel, err = telemetry.Setup(ctx, telemetry.Config{
		ServiceName:    cfg.Telemetry.ServiceName,
		Traces:         traces,
		Getenv:         sio.getenv,
		TraceWriter:    opts.TraceWriter,
		MetricsAddr:    metricsAddr,
		LogFormat:      cfg.Telemetry.LogFormat,
		LogLevel:       cfg.Telemetry.LogLevel,
		LogWriter:      opts.LogWriter,
		SpanProcessors: opts.SpanProcessors,
		Readers:        opts.Readers,
	})
	if err != nil {
		return s, fmt.Errorf("telemetry: %w", err)
	}
	s.closers = append(s.closers, s.tel.Shutdown)
	s.logger = s.tel.Logger()

	if err := s.startNATS(ctx, opts); err != nil {
		return s, err
	}
	if opts.NATSOnly {
		return s, nil
	}
	if err := s.startZoho(ctx, opts); err != nil {
		return s, err
	}

	s.rules, err = handlers.NewRules(cfg.RulesConfig())
	if err != nil {
		return s, fmt.Errorf("rules: %w", err)
	}
	s.handler, err = handlers.New(handlers.Config{
		Mapper:         s.rules,
		Sharer:         s.zoho,
		Logger:         s.logger.With("component", "share"),
		TracerProvider: s.tel.TracerProvider(),
		MeterProvider:  s.tel.MeterProvider(),
	})
	if err != nil {
		return s, fmt.Errorf("share handler: %w", err)
	}
	if opts.NoConsumer {
		return s, nil
	}

	ccfg := s.consumerConfig()
	if opts.Consumer != nil {
		opts.Consumer(&ccfg)
	}
	s.consumer, err = consumer.New(ccfg)
	if err != nil {
		return s, fmt.Errorf("consumer: %w", err)
	}
	s.tel.AddReadyCheck("nats", func(context.Context) error { return s.consumer.Ready() })
	s.tel.AddReadyCheck("zoho", s.zoho.CheckCredentials)
	if err := s.setupConsumer(ctx); err != nil {
		return s, err
	}
	if cfg.Ingress.Addr != "" && !opts.NoListeners {
		if err := s.startIngress(ctx); err != nil {
			return s, err
		}
	}
	return s, nil
}

// consumerConfig maps the nats section onto the consumer's config.
func (s *service) consumerConfig() consumer.Config {
	n := s.cfg.NATS
	return consumer.Config{
		JS:   s.js,
		Conn: s.nc,
		Stream: consumer.StreamConfig{
			Name:            n.Stream.Name,
			Subjects:        n.Stream.Subjects,
			MaxAge:          n.Stream.MaxAge,
			DuplicateWindow: n.Stream.DuplicateWindow,
			Replicas:        n.Stream.Replicas,
		},
		Consumer: consumer.ConsumerConfig{
			Durable:        n.Consumer.Durable,
			FilterSubjects: n.Consumer.FilterSubjects,
			AckWait:        n.Consumer.AckWait,
			MaxDeliver:     n.Consumer.MaxDeliver,
			BackOff:        n.Consumer.Backoff,
			MaxAckPending:  n.Consumer.MaxAckPending,
		},
		Ledger:         consumer.LedgerConfig{Bucket: n.Ledger.Bucket, TTL: n.Ledger.TTL},
		DeadLetter:     consumer.DeadLetterConfig{Stream: n.DeadLetter.Stream, Subject: n.DeadLetter.Subject},
		BindOnly:       !n.Stream.Create,
		Concurrency:    n.Concurrency,
		Handler:        s.handler,
		Probe:          s.zoho.Probe,
		Logger:         s.logger.With("component", "consumer"),
		TracerProvider: s.tel.TracerProvider(),
		MeterProvider:  s.tel.MeterProvider(),
	}
}

// setupConsumer creates or binds the stream and consumer. While NATS cannot
// be reached it keeps trying (the service reports not ready meanwhile), so a
// service started before its NATS cluster comes up on its own.
func (s *service) setupConsumer(ctx context.Context) error {
	wait := 500 * time.Millisecond
	for {
		err := s.consumer.Setup(ctx)
		if err == nil {
			return nil
		}
		if s.nc.IsConnected() && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("set up jetstream: %w", err)
		}
		s.logger.WarnContext(ctx, "jetstream not reachable yet; retrying", "error", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return fmt.Errorf("set up jetstream: %w", ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
	}
}

// startNATS starts the embedded server when the config says so, and connects.
func (s *service) startNATS(ctx context.Context, opts serviceOptions) error {
	n := s.cfg.NATS
	s.natsURL = n.URL
	if n.URL == "embedded" {
		if opts.NoConsumer || opts.NATSOnly {
			// A tool beside a running service: reach the service's embedded
			// server instead of starting a second one on the same store.
			s.natsURL = "nats://" + n.EmbeddedAddr
		} else {
			if err := s.startEmbedded(ctx); err != nil {
				return err
			}
		}
	}
	closed := make(chan struct{})
	natsOpts := []nats.Option{
		nats.Name("crmshare"),
		nats.ClosedHandler(func(*nats.Conn) { close(closed) }),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.RetryOnFailedConnect(!opts.NoConsumer && !opts.NATSOnly),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil: we closed it ourselves
				s.logger.Warn("nats disconnected", "error", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			s.logger.Info("nats reconnected", "url", c.ConnectedUrlRedacted())
		}),
	}
	if n.CredsFile != "" {
		natsOpts = append(natsOpts, nats.UserCredentials(n.CredsFile))
	}
	if n.TLS.CAFile != "" || n.TLS.CertFile != "" {
		tc, err := natsTLS(n.TLS)
		if err != nil {
			return err
		}
		natsOpts = append(natsOpts, nats.Secure(tc))
	}
	nc, err := nats.Connect(s.natsURL, natsOpts...)
	if err != nil {
		if n.URL == "embedded" && (opts.NoConsumer || opts.NATSOnly) {
			return fmt.Errorf("connect to the service's embedded nats at %s (is crmshare run going?): %w", s.natsURL, err)
		}
		return fmt.Errorf("connect to nats: %w", err)
	}
	s.nc = nc
	s.closers = append(s.closers, func(ctx context.Context) error {
		if err := nc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			nc.Close()
			return fmt.Errorf("drain nats: %w", err)
		}
		// Drain is asynchronous; closing the embedded server before it ends
		// would lose the last acks.
		select {
		case <-closed:
			return nil
		case <-ctx.Done():
			nc.Close()
			return fmt.Errorf("drain nats: %w", ctx.Err())
		}
	})
	s.js, err = jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	return nil
}

func (s *service) startEmbedded(ctx context.Context) error {
	n := s.cfg.NATS
	host, portStr, err := net.SplitHostPort(n.EmbeddedAddr)
	if err != nil {
		return fmt.Errorf("nats.embedded_addr: %w", err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return fmt.Errorf("nats.embedded_addr: %w", err)
	}
	if port == 0 {
		port = -1
	}
	// Without a store_dir the store is a fresh temporary directory, removed
	// again on Close so that dev runs do not pile up stores.
	dir, temp := n.StoreDir, n.StoreDir == ""
	if temp {
		if dir, err = os.MkdirTemp("", "crmshare-nats-"); err != nil {
			return fmt.Errorf("embedded nats store: %w", err)
		}
	}
	srv, err := consumer.StartEmbedded(consumer.EmbeddedConfig{StoreDir: dir, Host: host, Port: port})
	if err != nil {
		if temp {
			_ = os.RemoveAll(dir)
		}
		return fmt.Errorf("embedded nats on %s (set nats.embedded_addr to a free address): %w", n.EmbeddedAddr, err)
	}
	s.natsServer = srv
	s.natsURL = srv.ClientURL()
	s.closers = append(s.closers, func(context.Context) error {
		srv.Shutdown()
		srv.WaitForShutdown()
		if temp {
			if err := os.RemoveAll(dir); err != nil {
				return fmt.Errorf("remove embedded nats store: %w", err)
			}
		}
		return nil
	})
	s.logger.InfoContext(ctx, "embedded nats started", "url", s.natsURL, "store_dir", dir)
	return nil
}

func natsTLS(c TLSConfig) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("nats tls ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("nats tls ca: no certificate in %s", c.CAFile)
		}
		tc.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("nats tls client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// startZoho starts the in-process emulator when asked and builds the client.
func (s *service) startZoho(ctx context.Context, opts serviceOptions) error {
	z := s.cfg.Zoho
	apiURL, accountsURL := z.APIURL, z.AccountsURL
	switch {
	case z.Emulator && opts.NoListeners:
		// A tool beside a running service: use the service's emulator, which
		// must then listen on a known address.
		if _, port, _ := net.SplitHostPort(z.EmulatorAddr); port == "0" {
			return fmt.Errorf("zoho.emulator_addr %s: give the emulator a fixed port so tools beside the service can reach it", z.EmulatorAddr)
		}
		apiURL, accountsURL = "http://"+z.EmulatorAddr, "http://"+z.EmulatorAddr
	case z.Emulator:
		if err := s.startEmulator(ctx); err != nil {
			return err
		}
		apiURL, accountsURL = s.emuURL, s.emuURL
	}
	base := http.DefaultTransport.(*http.Transport).Clone()
	// One idle connection per allowed in-flight call: the default of two per
	// host would close and reopen connections under load.
	base.MaxIdleConnsPerHost = 2 * z.MaxConcurrency
	// otelhttp gives each call whose share span records a client span
	// beneath it. An unsampled or untraced call goes straight to the
	// transport, sparing otelhttp's per-call copies of the request and its
	// attributes (Zoho does not read the trace context). otelhttp's HTTP
	// metrics are off: the client's own crmshare.zoho.request.duration
	// already counts every call by method, status and Zoho code.
	hc := &http.Client{Transport: tracedOnly{
		traced: otelhttp.NewTransport(inMemoryBody{base},
			otelhttp.WithTracerProvider(s.tel.TracerProvider()),
			otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()),
			otelhttp.WithPropagators(s.tel.Propagator()),
			otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return "zoho " + r.Method }),
		),
		plain: base,
	}}
	zc, err := zoho.NewClient(zoho.Config{
		APIVersion:     z.APIVersion,
		DataCenter:     z.DataCenter,
		APIURL:         apiURL,
		AccountsURL:    accountsURL,
		ClientID:       z.ClientID,
		ClientSecret:   zoho.Secret(z.ClientSecret),
		RefreshToken:   zoho.Secret(z.RefreshToken),
		MaxConcurrency: z.MaxConcurrency,
		Timeout:        z.Timeout,
		Notify:         z.Notify,
		UsersCacheTTL:  z.UsersCacheTTL,
		HTTPClient:     hc,
		Logger:         s.logger.With("component", "zoho"),
		MeterProvider:  s.tel.MeterProvider(),
	})
	if err != nil {
		return fmt.Errorf("zoho client: %w", err)
	}
	s.zoho = zc
	return nil
}

func (s *service) startEmulator(ctx context.Context) error {
	z := s.cfg.Zoho
	var (
		seed *zohoemu.Seed
		err  error
	)
	if z.EmulatorSeed != "" {
		seed, err = zohoemu.ReadSeedFile(z.EmulatorSeed)
	} else {
		seed, err = zohoemu.DemoSeed()
	}
	if err != nil {
		return fmt.Errorf("emulator seed: %w", err)
	}
	emu, err := zohoemu.New(zohoemu.Config{Seed: seed})
	if err != nil {
		return fmt.Errorf("emulator: %w", err)
	}
	ln, err := net.Listen("tcp", z.EmulatorAddr)
	if err != nil {
		return fmt.Errorf("emulator listen: %w", err)
	}
	srv := &http.Server{Handler: emu, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	s.emu, s.emuSrv = emu, srv
	s.emuURL = "http://" + ln.Addr().String()
	s.closers = append(s.closers, func(ctx context.Context) error {
		err := srv.Shutdown(ctx)
		if serr := <-done; !errors.Is(serr, http.ErrServerClosed) {
			err = errors.Join(err, serr)
		}
		return err
	})
	s.logger.InfoContext(ctx, "zoho emulator started", "url", s.emuURL, "admin", s.emuURL+"/_emu/state",
		"seed", cmp.Or(z.EmulatorSeed, "built-in demo org"))
	return nil
}

// Run consumes until ctx is done; the consumer then drains in-flight work.
func (s *service) Run(ctx context.Context) error {
	if s.consumer == nil {
		return errors.New("service has no consumer")
	}
	return s.consumer.Run(ctx)
}

// Close stops everything that was started, in reverse order.
func (s *service) Close(ctx context.Context) error {
	var errs []error
	for i := len(s.closers) - 1; i >= 0; i-- {
		errs = append(errs, s.closers[i](ctx))
	}
	s.closers = nil
	return errors.Join(errs...)
}

// tracedOnly sends a request whose span records through traced, and any
// other straight to plain.
type tracedOnly struct{ traced, plain http.RoundTripper }

func (t tracedOnly) RoundTrip(r *http.Request) (*http.Response, error) {
	if trace.SpanFromContext(r.Context()).IsRecording() {
		return t.traced.RoundTrip(r)
	}
	return t.plain.RoundTrip(r)
}

// CloseIdleConnections closes the idle connections of the transport
// beneath (both paths share it).
func (t tracedOnly) CloseIdleConnections() {
	if c, ok := t.plain.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// inMemoryBody sits under otelhttp and reads a small request body of known
// length (a share write is a few hundred bytes) into memory before the
// transport sees it. net/http writes an in-memory body in the same write as
// the headers; behind otelhttp's byte-counting wrapper it flushes the headers
// first, which costs one more write and read per Zoho call. The body is read
// through the wrapper, so otelhttp still counts it.
type inMemoryBody struct{ next http.RoundTripper }

// maxInMemoryBody bounds the bodies inMemoryBody reads ahead.
const maxInMemoryBody = 64 << 10

func (t inMemoryBody) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength <= 0 || r.ContentLength > maxInMemoryBody {
		return t.next.RoundTrip(r)
	}
	b := make([]byte, r.ContentLength)
	_, err := io.ReadFull(r.Body, b)
	// A RoundTripper closes the body it was given, and does not change the
	// request: the copy shares everything but the body.
	_ = r.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("read request body: %w", err)
	}
	r2 := *r
	r2.Body = io.NopCloser(bytes.NewReader(b))
	return t.next.RoundTrip(&r2)
}
