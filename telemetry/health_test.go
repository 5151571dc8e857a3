package telemetry

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestHealthz(t *testing.T) {
	tel := mustSetup(t, Config{MetricsAddr: "127.0.0.1:0"})
	tel.AddReadyCheck("nats", func(context.Context) error { return errors.New("not connected") })
	// Liveness ignores readiness: a pod that is not ready must not be restarted for it.
	status, body := scrape(t, tel, "/healthz")
	if status != http.StatusOK || body != "ok\n" {
		t.Errorf("GET /healthz = %d %q, want 200 %q", status, body, "ok\n")
	}
}

func TestReadyz(t *testing.T) {
	type check struct {
		name string
		fn   func(context.Context) error
	}
	ok := func(context.Context) error { return nil }
	// stuck ignores its ctx and returns only when the test is over.
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	stuck := func(context.Context) error { <-release; return nil }

	tests := []struct {
		name       string
		checks     []check
		wantStatus int
		wantBody   string
	}{
		{
			name:       "no checks",
			wantStatus: http.StatusOK,
			wantBody:   "ok\n",
		},
		{
			name:       "all pass",
			checks:     []check{{"zoho", ok}, {"nats", ok}},
			wantStatus: http.StatusOK,
			wantBody:   "ok nats\nok zoho\n",
		},
		{
			name: "one fails",
			checks: []check{
				{"nats", ok},
				{"consumer", func(context.Context) error { return errors.New("stream CRM_EVENTS not found") }},
			},
			wantStatus: http.StatusServiceUnavailable,
			wantBody:   "fail consumer: stream CRM_EVENTS not found\nok nats\n",
		},
		{
			name: "check that honours its deadline",
			checks: []check{{"zoho", func(ctx context.Context) error {
				<-ctx.Done()
				return ctx.Err()
			}}},
			wantStatus: http.StatusServiceUnavailable,
			wantBody:   "fail zoho: timed out: context deadline exceeded\n",
		},
		{
			name:       "check that ignores its deadline",
			checks:     []check{{"slow", stuck}, {"nats", ok}},
			wantStatus: http.StatusServiceUnavailable,
			wantBody:   "ok nats\nfail slow: no answer within 100ms\n",
		},
		{
			name:       "check that panics",
			checks:     []check{{"bad", func(context.Context) error { panic("nil map") }}},
			wantStatus: http.StatusServiceUnavailable,
			wantBody:   "fail bad: check panicked: nil map\n",
		},
		{
			name: "secret in the message",
			checks: []check{{"zoho", func(context.Context) error {
				return errors.New(`Post "https://accounts.zoho.com/oauth/v2/token?refresh_token=1000.abcdef&client_secret=s3cr3t": dial tcp: refused`)
			}}},
			wantStatus: http.StatusServiceUnavailable,
			wantBody:   `fail zoho: Post "https://accounts.zoho.com/oauth/v2/token?refresh_token=REDACTED&client_secret=REDACTED": dial tcp: refused` + "\n",
		},
		{
			name:       "removed check",
			checks:     []check{{"nats", func(context.Context) error { return errors.New("down") }}, {"nats", nil}},
			wantStatus: http.StatusOK,
			wantBody:   "ok\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tel := mustSetup(t, Config{MetricsAddr: "127.0.0.1:0", ReadyTimeout: 100 * time.Millisecond})
			for _, c := range tt.checks {
				tel.AddReadyCheck(c.name, c.fn)
			}
			status, body := scrape(t, tel, "/readyz")
			if status != tt.wantStatus {
				t.Errorf("GET /readyz status = %d, want %d", status, tt.wantStatus)
			}
			if diff := cmp.Diff(body, tt.wantBody); diff != "" {
				t.Errorf("GET /readyz body mismatch (-got +want):\n%s", diff)
			}
		})
	}
}
