package telemetry

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// TestResourceFromEnv: OTEL_RESOURCE_ATTRIBUTES (percent-decoded) and
// OTEL_SERVICE_NAME reach the resource of every span; a malformed value is
// refused at Setup.
func TestResourceFromEnv(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want map[string]string
	}{
		{"config name", map[string]string{
			"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=prod, k8s.pod.name=crmshare-7%2Cb,service.name=ignored",
		}, map[string]string{"deployment.environment.name": "prod", "k8s.pod.name": "crmshare-7,b", "service.name": "crmshare-test"}},
		{"OTEL_SERVICE_NAME wins", map[string]string{
			"OTEL_SERVICE_NAME": "crmshare-eu",
		}, map[string]string{"service.name": "crmshare-eu"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := tracetest.NewSpanRecorder()
			tel, err := Setup(t.Context(), Config{
				ServiceName:    "crmshare-test",
				Getenv:         func(k string) string { return tt.env[k] },
				SpanProcessors: []sdktrace.SpanProcessor{rec},
			})
			if err != nil {
				t.Fatal(err)
			}
			_, span := tel.TracerProvider().Tracer("test").Start(t.Context(), "x")
			span.End()
			if err := tel.Shutdown(t.Context()); err != nil {
				t.Fatal(err)
			}
			spans := rec.Ended()
			if len(spans) != 1 {
				t.Fatalf("%d spans, want 1", len(spans))
			}
			got := map[string]string{}
			for _, kv := range spans[0].Resource().Attributes() {
				if _, ok := tt.want[string(kv.Key)]; ok {
					got[string(kv.Key)] = kv.Value.Emit()
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("resource attributes (-want +got):\n%s", diff)
			}
		})
	}
	for _, bad := range []string{"novalue", "=x", "k=%zz"} {
		_, err := Setup(t.Context(), Config{Getenv: func(k string) string {
			if k == "OTEL_RESOURCE_ATTRIBUTES" {
				return bad
			}
			return ""
		}})
		if err == nil {
			t.Errorf("Setup with OTEL_RESOURCE_ATTRIBUTES=%q succeeded, want an error", bad)
		}
	}
}
