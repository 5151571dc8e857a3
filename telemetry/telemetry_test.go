package telemetry

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// mustSetup starts telemetry for one test and shuts it down when the test ends.
func mustSetup(tb testing.TB, c Config) *Telemetry {
	tb.Helper()
	if c.LogWriter == nil {
		c.LogWriter = io.Discard
	}
	tel, err := Setup(tb.Context(), c)
	if err != nil {
		tb.Fatalf("Setup: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := tel.Shutdown(ctx); err != nil {
			tb.Errorf("Shutdown: %v", err)
		}
	})
	return tel
}

func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestSetupTraces(t *testing.T) {
	tests := []struct {
		name      string
		traces    string
		procs     bool
		recording bool
	}{
		{name: "zero value is none", traces: "", recording: false},
		{name: "none", traces: TracesNone, recording: false},
		{name: "none with a span processor", traces: TracesNone, procs: true, recording: true},
		{name: "stdout", traces: TracesStdout, recording: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			rec := tracetest.NewSpanRecorder()
			c := Config{ServiceName: "crmshare-test", Traces: tt.traces, TraceWriter: &out}
			if tt.procs {
				c.SpanProcessors = []sdktrace.SpanProcessor{rec}
			}
			tel, err := Setup(t.Context(), c)
			if err != nil {
				t.Fatalf("Setup: %v", err)
			}
			_, span := tel.TracerProvider().Tracer("test").Start(t.Context(), "process deal.assigned")
			if got := span.IsRecording(); got != tt.recording {
				t.Errorf("span.IsRecording() = %v, want %v", got, tt.recording)
			}
			span.End()
			if err := tel.Shutdown(t.Context()); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}

			wantStdout := tt.traces == TracesStdout
			if got := strings.Contains(out.String(), `"Name": "process deal.assigned"`); got != wantStdout {
				t.Errorf("stdout has the pretty-printed span = %v, want %v; output:\n%s", got, wantStdout, out.String())
			}
			if wantStdout {
				var decoded struct {
					Name     string
					Resource []struct{ Key string }
				}
				if err := json.NewDecoder(&out).Decode(&decoded); err != nil {
					t.Fatalf("decode stdout span: %v", err)
				}
				if decoded.Name != "process deal.assigned" {
					t.Errorf("stdout span name = %q, want %q", decoded.Name, "process deal.assigned")
				}
			}
			if got, want := len(rec.Ended()), map[bool]int{true: 1}[tt.procs]; got != want {
				t.Errorf("recorded spans = %d, want %d", got, want)
			}
		})
	}
}

// otlpCollector is an OTLP/HTTP endpoint that keeps each export request.
type otlpCollector struct {
	reqs chan otlpRequest
}

type otlpRequest struct {
	path, contentType string
	body              []byte
}

func (oc *otlpCollector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	select {
	case oc.reqs <- otlpRequest{path: r.URL.Path, contentType: r.Header.Get("Content-Type"), body: b}:
	default: // the test looks at the first few only
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(http.StatusOK) // an empty ExportTraceServiceResponse
}

func TestSetupOTLPHTTP(t *testing.T) {
	oc := &otlpCollector{reqs: make(chan otlpRequest, 8)}
	srv := httptest.NewServer(oc)
	t.Cleanup(srv.Close)
	// The exporter reads its endpoint from the process environment, as in production.
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", srv.URL+"/v1/traces")

	tel, err := Setup(t.Context(), Config{
		ServiceName: "crmshare-otlp-test",
		Version:     "1.2.3",
		Traces:      TracesOTLP,
		Getenv:      envMap(map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}),
		LogWriter:   io.Discard,
	})
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	_, span := tel.TracerProvider().Tracer("test").Start(t.Context(), "share Deals")
	traceID := span.SpanContext().TraceID()
	span.End()

	select {
	case r := <-oc.reqs:
		t.Fatalf("export before Shutdown (batching is off?): %s", r.path)
	default:
	}
	if err := tel.Shutdown(t.Context()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}

	var r otlpRequest
	select {
	case r = <-oc.reqs:
	default:
		t.Fatal("no OTLP export request arrived by the time Shutdown returned")
	}
	if got, want := r.path, "/v1/traces"; got != want {
		t.Errorf("path = %q, want %q", got, want)
	}
	if got, want := r.contentType, "application/x-protobuf"; got != want {
		t.Errorf("content type = %q, want %q", got, want)
	}
	// Protobuf carries strings and the 16-byte trace ID as raw bytes.
	for _, want := range [][]byte{[]byte("share Deals"), traceID[:], []byte("crmshare-otlp-test"), []byte("1.2.3")} {
		if !bytes.Contains(r.body, want) {
			t.Errorf("export body lacks %q", want)
		}
	}
}

func TestSetupOTLPGRPCWithoutCollector(t *testing.T) {
	// Nothing listens there: the exporter must not dial at Setup, so the
	// service starts while the collector is down, and an idle Shutdown is clean.
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:1")
	tel, err := Setup(t.Context(), Config{
		Traces:    TracesOTLP,
		Getenv:    envMap(map[string]string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}),
		LogWriter: io.Discard,
	})
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	if err := tel.Shutdown(t.Context()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

func TestOTLPProtocol(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    string
		wantErr bool
	}{
		{name: "default", env: nil, want: "http/protobuf"},
		{name: "general grpc", env: map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, want: "grpc"},
		{name: "traces wins", env: map[string]string{
			"OTEL_EXPORTER_OTLP_PROTOCOL":        "grpc",
			"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
		}, want: "http/protobuf"},
		{name: "http/json is not supported", env: map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := otlpProtocol(envMap(tt.env))
			if (err != nil) != tt.wantErr {
				t.Fatalf("otlpProtocol() error = %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("otlpProtocol() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSetupRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		c    Config
		want []string // fragments the joined error must mention
	}{
		{name: "traces", c: Config{Traces: "jaeger"}, want: []string{`traces "jaeger"`}},
		{name: "protocol", c: Config{Traces: TracesOTLP, Getenv: envMap(map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"})},
			want: []string{`otlp protocol "http/json"`}},
		{name: "every problem at once", c: Config{LogFormat: "xml", LogLevel: "loud", ReadyTimeout: -time.Second, SpanProcessors: []sdktrace.SpanProcessor{nil}},
			want: []string{`log format "xml"`, `log level "loud"`, "ready timeout", "span processor 0 is nil"}},
		{name: "bad address", c: Config{MetricsAddr: "127.0.0.1:-5"}, want: []string{"metrics listener"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.c.LogWriter = io.Discard
			tel, err := Setup(t.Context(), tt.c)
			if err == nil {
				_ = tel.Shutdown(t.Context())
				t.Fatal("Setup succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestSetupLeavesGlobalsAlone(t *testing.T) {
	before := otel.GetTracerProvider()
	beforeProp := otel.GetTextMapPropagator()
	tel := mustSetup(t, Config{SpanProcessors: []sdktrace.SpanProcessor{tracetest.NewSpanRecorder()}})
	if otel.GetTracerProvider() != before {
		t.Error("Setup replaced the global tracer provider")
	}
	if otel.GetTextMapPropagator() != beforeProp {
		t.Error("Setup replaced the global propagator")
	}
	if diff := cmp.Diff(slices.Sorted(slices.Values(tel.Propagator().Fields())), []string{"baggage", "traceparent", "tracestate"}); diff != "" {
		t.Errorf("Propagator().Fields() mismatch (-got +want):\n%s", diff)
	}

	// A round trip through a header map keeps the trace and the baggage.
	ctx, span := tel.TracerProvider().Tracer("test").Start(t.Context(), "publish")
	defer span.End()
	member, err := baggage.NewMember("tenant", "acme")
	if err != nil {
		t.Fatal(err)
	}
	bag, err := baggage.New(member)
	if err != nil {
		t.Fatal(err)
	}
	ctx = baggage.ContextWithBaggage(ctx, bag)
	carrier := propagation.MapCarrier{}
	tel.Propagator().Inject(ctx, carrier)
	got := tel.Propagator().Extract(t.Context(), carrier)
	if gotID, wantID := trace.SpanContextFromContext(got).TraceID(), span.SpanContext().TraceID(); gotID != wantID {
		t.Errorf("extracted trace ID = %s, want %s (carrier %v)", gotID, wantID, carrier)
	}
	if gotB := baggage.FromContext(got).Member("tenant").Value(); gotB != "acme" {
		t.Errorf("extracted baggage tenant = %q, want %q", gotB, "acme")
	}
}

func TestShutdownTwice(t *testing.T) {
	tel, err := Setup(t.Context(), Config{MetricsAddr: "127.0.0.1:0", LogWriter: io.Discard})
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	addr := tel.Addr()
	if addr == "" {
		t.Fatal("Addr() is empty with a listener")
	}
	if err := tel.Shutdown(t.Context()); err != nil {
		t.Fatalf("first Shutdown: %v", err)
	}
	if err := tel.Shutdown(t.Context()); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+addr+"/healthz", nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("listener still answers after Shutdown: %s", resp.Status)
	}
}

func TestNoListenerWithoutAddr(t *testing.T) {
	tel := mustSetup(t, Config{})
	if got := tel.Addr(); got != "" {
		t.Errorf("Addr() = %q, want empty", got)
	}
	rec := httptest.NewRecorder()
	tel.Handler().ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/healthz", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("Handler() /healthz = %d, want 200", rec.Code)
	}
}

func TestZeroConfigIsValid(t *testing.T) {
	var c Config
	if err := c.Validate(); err != nil {
		t.Errorf("Config{}.Validate() = %v, want nil", err)
	}
	if c.ServiceName != "" {
		t.Errorf("Validate changed the config: ServiceName = %q", c.ServiceName)
	}
}
