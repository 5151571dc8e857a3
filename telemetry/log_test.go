package telemetry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// decodeLines parses JSON log output, one object per line.
func decodeLines(tb testing.TB, out *bytes.Buffer) []map[string]any {
	tb.Helper()
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			tb.Fatalf("log line is not JSON: %v\n%s", err, l)
		}
		lines = append(lines, m)
	}
	return lines
}

func TestLogTraceIDs(t *testing.T) {
	var out bytes.Buffer
	tel := mustSetup(t, Config{
		LogWriter:      &out,
		SpanProcessors: []sdktrace.SpanProcessor{tracetest.NewSpanRecorder()},
	})
	logger := tel.Logger()
	ctx, span := tel.TracerProvider().Tracer("test").Start(t.Context(), "process deal.assigned")
	defer span.End()
	sc := span.SpanContext()
	ids := map[string]any{"trace_id": sc.TraceID().String(), "span_id": sc.SpanID().String()}

	logger.InfoContext(t.Context(), "outside span")
	logger.InfoContext(ctx, "inside span", "event_id", "E1")
	logger.With("component", "consumer").WithGroup("msg").InfoContext(ctx, "inside group", "attempt", 2)
	logger.Info("no context")

	lines := decodeLines(t, &out)
	if len(lines) != 4 {
		t.Fatalf("got %d log lines, want 4:\n%s", len(lines), out.String())
	}
	for i, want := range []map[string]any{
		{},
		ids,
		ids,
		{},
	} {
		got := map[string]any{}
		for _, k := range []string{"trace_id", "span_id"} {
			if v, ok := lines[i][k]; ok {
				got[k] = v
			}
		}
		if diff := cmp.Diff(got, want); diff != "" {
			t.Errorf("line %d (%s) IDs mismatch (-got +want):\n%s", i, lines[i]["msg"], diff)
		}
	}
	if got, want := lines[1]["event_id"], "E1"; got != want {
		t.Errorf("event_id = %v, want %v", got, want)
	}
	// The group holds the record's own attributes; the IDs stay at the top.
	if diff := cmp.Diff(lines[2]["msg"], any(map[string]any{"attempt": float64(2)})); diff != "" {
		t.Errorf("group mismatch (-got +want):\n%s", diff)
	}
	if got, want := lines[2]["component"], "consumer"; got != want {
		t.Errorf("component = %v, want %v", got, want)
	}
}

func TestLogLevelAndFormat(t *testing.T) {
	tests := []struct {
		name, format, level string
		wantLines           []string
	}{
		{name: "json info", format: "json", level: "info", wantLines: []string{`"msg":"started"`, `"msg":"nak"`}},
		{name: "json warn", format: "", level: "WARN", wantLines: []string{`"msg":"nak"`}},
		{name: "text debug", format: "text", level: "debug", wantLines: []string{"msg=message", "msg=started", "msg=nak"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			tel := mustSetup(t, Config{LogWriter: &out, LogFormat: tt.format, LogLevel: tt.level})
			tel.Logger().Debug("message")
			tel.Logger().Info("started")
			tel.Logger().Warn("nak")
			got := strings.Split(strings.TrimSpace(out.String()), "\n")
			if len(got) != len(tt.wantLines) {
				t.Fatalf("got %d lines, want %d:\n%s", len(got), len(tt.wantLines), out.String())
			}
			for i, w := range tt.wantLines {
				if !strings.Contains(got[i], w) {
					t.Errorf("line %d = %q, want it to contain %q", i, got[i], w)
				}
			}
		})
	}
}

// clientSecret redacts itself, the way the project's secret types do.
type clientSecret string

func (clientSecret) LogValue() slog.Value { return slog.StringValue(Redacted) }

// oauthConfig has a secret field and no LogValuer; only its key can save it.
type oauthConfig struct {
	ClientID     string
	ClientSecret string
}

func TestLogRedaction(t *testing.T) {
	const secret = "1000.s3cr3tVALUEq9"
	tests := []struct {
		name string
		log  func(*slog.Logger)
		keep string // a non-secret value that must survive
	}{
		{name: "LogValuer type under an innocent key", log: func(l *slog.Logger) {
			l.Info("refresh", "value", clientSecret(secret), "user_id", "U1")
		}, keep: `"user_id":"U1"`},
		{name: "refresh_token key", log: func(l *slog.Logger) {
			l.Info("refresh", "refresh_token", secret, "module", "Deals")
		}, keep: `"module":"Deals"`},
		{name: "keys in other spellings", log: func(l *slog.Logger) {
			l.Info("config", "ClientSecret", secret, "X-Api-Key", secret, "zoho.access-token", secret, "Password", secret, "record_id", "R1")
		}, keep: `"record_id":"R1"`},
		{name: "struct under a secret key", log: func(l *slog.Logger) {
			l.Info("config", "client_secret", oauthConfig{ClientID: "C1", ClientSecret: secret})
		}},
		{name: "group with a secret name", log: func(l *slog.Logger) {
			l.Info("config", slog.Group("credentials", "id", secret))
		}},
		{name: "secret key inside a group", log: func(l *slog.Logger) {
			l.WithGroup("zoho").Info("config", "authorization", "Zoho-oauthtoken "+secret, "status", 401)
		}, keep: `"status":401`},
		{name: "logger.With", log: func(l *slog.Logger) {
			l.With("api_key", secret).Info("start")
		}},
		{name: "authorization header value under an innocent key", log: func(l *slog.Logger) {
			l.Info("request", "header", "Zoho-oauthtoken "+secret)
		}},
		{name: "bearer value", log: func(l *slog.Logger) {
			l.Info("request", "sent", "Authorization: Bearer "+secret)
		}},
		{name: "error quoting a token URL", log: func(l *slog.Logger) {
			err := &url.Error{Op: "Post", URL: "https://accounts.zoho.com/oauth/v2/token?refresh_token=" + secret + "&grant_type=refresh_token", Err: errors.New("connection refused")}
			l.Error("refresh", "error", fmt.Errorf("zoho: token refresh: %w", err))
		}, keep: "grant_type=refresh_token"},
		{name: "http.Header", log: func(l *slog.Logger) {
			l.Info("request", "headers", http.Header{"Authorization": {"Zoho-oauthtoken " + secret}, "Content-Type": {"application/json"}})
		}, keep: "application/json"},
		{name: "url with secret query", log: func(l *slog.Logger) {
			u, _ := url.Parse("https://accounts.zoho.com/oauth/v2/token?client_secret=" + secret + "&client_id=C1")
			l.Info("request", "url", u)
		}, keep: "client_id=C1"},
		{name: "url with password", log: func(l *slog.Logger) {
			u, _ := url.Parse("nats://crmshare:" + secret + "@127.0.0.1:4222")
			l.Info("connect", "nats", u)
		}, keep: "127.0.0.1:4222"},
	}
	for _, format := range []string{LogJSON, LogText} {
		for _, tt := range tests {
			t.Run(format+"/"+tt.name, func(t *testing.T) {
				var out bytes.Buffer
				tel := mustSetup(t, Config{LogWriter: &out, LogFormat: format})
				tt.log(tel.Logger())
				got := out.String()
				if strings.Contains(got, secret) || strings.Contains(got, "s3cr3t") {
					t.Errorf("secret leaked:\n%s", got)
				}
				if !strings.Contains(got, Redacted) && !strings.Contains(got, "xxxxx") {
					t.Errorf("no %s marker in:\n%s", Redacted, got)
				}
				if format == LogJSON && tt.keep != "" && !strings.Contains(got, tt.keep) {
					t.Errorf("over-redacted: %q is gone from:\n%s", tt.keep, got)
				}
			})
		}
	}
}

func TestSecretKey(t *testing.T) {
	tests := []struct {
		key  string
		want bool
	}{
		{"refresh_token", true},
		{"access_token", true},
		{"Authorization", true},
		{"client_secret", true},
		{"hmac_secret", true},
		{"password", true},
		{"X-API-Key", true},
		{"apikey", true},
		{"credentials", true},
		{"Cookie", true},
		{"user_id", false},
		{"event_id", false},
		{"record_id", false},
		{"zoho_code", false},
		{"status", false},
		{"error", false},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			if got := secretKey(tt.key); got != tt.want {
				t.Errorf("secretKey(%q) = %v, want %v", tt.key, got, tt.want)
			}
		})
	}
}

func TestScrubLeavesPlainTextAlone(t *testing.T) {
	for _, s := range []string{
		"zoho: 403 SHARE_LIMIT_EXCEEDED: share limit exceeded",
		"basic auth is not configured",
		"status_code=500 attempt=3",
		"deal.assigned",
	} {
		if got := scrub(s); got != s {
			t.Errorf("scrub(%q) = %q, want it unchanged", s, got)
		}
	}
}
