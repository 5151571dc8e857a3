package telemetry

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// scrape GETs path from the real listener and returns the status and body.
func scrape(tb testing.TB, tel *Telemetry, path string) (int, string) {
	tb.Helper()
	req, err := http.NewRequestWithContext(tb.Context(), http.MethodGet, "http://"+tel.Addr()+path, nil)
	if err != nil {
		tb.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("read %s: %v", path, err)
	}
	return resp.StatusCode, string(b)
}

func TestMetricsEndpoint(t *testing.T) {
	manual := sdkmetric.NewManualReader()
	tel := mustSetup(t, Config{
		ServiceName: "crmshare-test",
		Version:     "0.9.0",
		MetricsAddr: "127.0.0.1:0",
		Readers:     []sdkmetric.Reader{manual},
	})
	ctx := t.Context()
	m := tel.MeterProvider().Meter("github.com/crmshare/crmshare/consumer")

	events, err := m.Int64Counter("crmshare.events", metric.WithUnit("{event}"), metric.WithDescription("Events handled."))
	if err != nil {
		t.Fatal(err)
	}
	ackDeal := metric.WithAttributes(attribute.String("type", "deal.assigned"), attribute.String("decision", "ack"))
	events.Add(ctx, 2, ackDeal)
	events.Add(ctx, 1, ackDeal)
	events.Add(ctx, 1, metric.WithAttributes(attribute.String("type", "deal.assigned"), attribute.String("decision", "term")))

	dur, err := m.Float64Histogram("crmshare.event.duration", metric.WithUnit("s"), metric.WithDescription("Time to handle an event."))
	if err != nil {
		t.Fatal(err)
	}
	dur.Record(ctx, 0.2)
	dur.Record(ctx, 3)

	inflight, err := m.Int64UpDownCounter("crmshare.inflight", metric.WithUnit("{event}"))
	if err != nil {
		t.Fatal(err)
	}
	inflight.Add(ctx, 3)
	inflight.Add(ctx, -1)

	zohoDur, err := m.Float64Histogram("crmshare.zoho.request.duration", metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.1, 1))
	if err != nil {
		t.Fatal(err)
	}
	zohoDur.Record(ctx, 0.05)

	status, body := scrape(t, tel, "/metrics")
	if status != http.StatusOK {
		t.Fatalf("GET /metrics = %d, want 200; body:\n%s", status, body)
	}
	lines := make(map[string]bool)
	for _, l := range strings.Split(body, "\n") {
		lines[l] = true
	}
	for _, want := range []string{
		"# TYPE crmshare_events_total counter",
		`crmshare_events_total{decision="ack",type="deal.assigned"} 3`,
		`crmshare_events_total{decision="term",type="deal.assigned"} 1`,
		"# TYPE crmshare_event_duration_seconds histogram",
		// Seconds buckets, not the SDK's millisecond ones.
		`crmshare_event_duration_seconds_bucket{le="0.1"} 0`,
		`crmshare_event_duration_seconds_bucket{le="0.25"} 1`,
		`crmshare_event_duration_seconds_bucket{le="5"} 2`,
		`crmshare_event_duration_seconds_bucket{le="+Inf"} 2`,
		"crmshare_event_duration_seconds_sum 3.2",
		"crmshare_event_duration_seconds_count 2",
		"# TYPE crmshare_inflight gauge",
		"crmshare_inflight 2",
		// Instrument advice wins over the default seconds buckets.
		`crmshare_zoho_request_duration_seconds_bucket{le="0.1"} 1`,
		`crmshare_zoho_request_duration_seconds_bucket{le="1"} 1`,
		`crmshare_zoho_request_duration_seconds_bucket{le="+Inf"} 1`,
	} {
		if !lines[want] {
			t.Errorf("/metrics lacks the line %q", want)
		}
	}
	for _, unwanted := range []string{"otel_scope_name", `crmshare_zoho_request_duration_seconds_bucket{le="0.005"}`} {
		if strings.Contains(body, unwanted) {
			t.Errorf("/metrics has %q", unwanted)
		}
	}
	for _, prefix := range []string{
		"target_info{",
		"go_goroutines ",
		"process_start_time_seconds ",
	} {
		if !hasLinePrefix(body, prefix) {
			t.Errorf("/metrics has no line starting %q", prefix)
		}
	}
	if !strings.Contains(body, `service_name="crmshare-test"`) || !strings.Contains(body, `service_version="0.9.0"`) {
		t.Errorf("target_info lacks service name and version:\n%s", grepLines(body, "target_info"))
	}

	// The extra reader sees the same instruments.
	var rm metricdata.ResourceMetrics
	if err := manual.Collect(context.WithoutCancel(ctx), &rm); err != nil {
		t.Fatalf("manual reader Collect: %v", err)
	}
	var names []string
	for _, sm := range rm.ScopeMetrics {
		for _, mm := range sm.Metrics {
			names = append(names, mm.Name)
		}
	}
	want := []string{"crmshare.events", "crmshare.event.duration", "crmshare.inflight", "crmshare.zoho.request.duration"}
	if diff := cmp.Diff(names, want); diff != "" {
		t.Errorf("manual reader metrics mismatch (-got +want):\n%s", diff)
	}
}

func hasLinePrefix(body, prefix string) bool {
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}

func grepLines(body, sub string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
