package zoho

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/crmshare/crmshare/zoho/zohoemu"
	"github.com/google/go-cmp/cmp"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

func TestTokenTTL(t *testing.T) {
	tests := []struct {
		name  string
		extra map[string]any
		want  time.Duration
	}{
		{"expires_in seconds", map[string]any{"expires_in": float64(3600)}, time.Hour},
		{"short ttl", map[string]any{"expires_in": float64(120)}, 2 * time.Minute},
		{"legacy reply prefers expires_in_sec", map[string]any{"expires_in": float64(3600000), "expires_in_sec": float64(3600)}, time.Hour},
		{"legacy short reply", map[string]any{"expires_in": float64(90000), "expires_in_sec": float64(90)}, 90 * time.Second},
		{"milliseconds without expires_in_sec are capped", map[string]any{"expires_in": float64(3600000)}, time.Hour},
		{"string numbers", map[string]any{"expires_in_sec": "1800"}, 30 * time.Minute},
		{"missing expiry assumes an hour", map[string]any{}, time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := (&oauth2.Token{AccessToken: "x"}).WithExtra(tt.extra)
			if got := tokenTTL(tok); got != tt.want {
				t.Errorf("tokenTTL = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestTokenExpiryFromReply(t *testing.T) {
	tests := []struct {
		name          string
		body          string
		wantExpiry    time.Duration
		wantRefreshAt time.Duration
	}{
		{"seconds", `{"access_token":"a","expires_in":3600}`, time.Hour, 55 * time.Minute},
		{"legacy milliseconds with expires_in_sec", `{"access_token":"a","expires_in":3600000,"expires_in_sec":3600}`, time.Hour, 55 * time.Minute},
		{"short ttl refreshes a fifth early", `{"access_token":"a","expires_in":100}`, 100 * time.Second, 80 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newScripted(t, reply(204, ``))
			s.setToken(func(int) (int, string) { return 200, tt.body })
			c := mustClient(t, s.URL, Config{})
			clk := newClock()
			c.now = clk.Now
			if err := c.CheckCredentials(t.Context()); err != nil {
				t.Fatalf("CheckCredentials: %v", err)
			}
			got := c.tokens.cur
			if d := got.expiry.Sub(clk.Now()); d != tt.wantExpiry {
				t.Errorf("expiry in %s, want %s", d, tt.wantExpiry)
			}
			if d := got.refreshAt.Sub(clk.Now()); d != tt.wantRefreshAt {
				t.Errorf("refresh in %s, want %s", d, tt.wantRefreshAt)
			}
		})
	}
}

func TestTokenEndpointFailures(t *testing.T) {
	tests := []struct {
		name          string
		status        int
		body          string
		wantCreds     string // CredentialsError code, if any
		wantStatus    int
		wantRetryable bool
		wantResult    string
	}{
		{name: "invalid_code", status: 200, body: `{"error":"invalid_code"}`, wantCreds: "invalid_code", wantResult: refreshRejected},
		{name: "invalid_client", status: 200, body: `{"error":"invalid_client"}`, wantCreds: "invalid_client", wantResult: refreshRejected},
		{name: "invalid_client_secret", status: 200, body: `{"error":"invalid_client_secret"}`, wantCreds: "invalid_client_secret", wantResult: refreshRejected},
		{name: "Access Denied throttle", status: 200, wantStatus: 429, wantRetryable: true, wantResult: refreshThrottled,
			body: `{"error_description":"You have made too many requests continuously. Please try again after some time.","error":"Access Denied","status":"failure"}`},
		{name: "no access_token", status: 200, body: `{"token_type":"Bearer"}`, wantStatus: 0, wantRetryable: true, wantResult: refreshError},
		{name: "unknown error code", status: 200, body: `{"error":"something_new"}`, wantStatus: 0, wantRetryable: true, wantResult: refreshError},
		{name: "500", status: 500, body: `oops`, wantStatus: 500, wantRetryable: true, wantResult: refreshError},
		{name: "not JSON", status: 200, body: `<html>`, wantStatus: 0, wantRetryable: true, wantResult: refreshError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newScripted(t, reply(204, ``))
			s.setToken(func(int) (int, string) { return tt.status, tt.body })
			mr := newMetricReader(t)
			c := mustClient(t, s.URL, Config{MeterProvider: mr.provider})
			err := c.CheckCredentials(t.Context())
			if err == nil {
				t.Fatal("CheckCredentials succeeded, want an error")
			}
			var r interface{ Retryable() bool }
			if !errors.As(err, &r) || r.Retryable() != tt.wantRetryable {
				t.Errorf("error %v: Retryable, want %v", err, tt.wantRetryable)
			}
			var ce *CredentialsError
			if tt.wantCreds != "" {
				if !errors.As(err, &ce) || ce.Code != tt.wantCreds || !ce.Suspend() || !errors.Is(err, ErrCredentialsRejected) {
					t.Errorf("error = %#v, want *CredentialsError %s that suspends and matches ErrCredentialsRejected", err, tt.wantCreds)
				}
			} else {
				var ze *Error
				if !errors.As(err, &ze) || ze.Status != tt.wantStatus {
					t.Errorf("error = %v, want *Error with status %d", err, tt.wantStatus)
				}
				if errors.As(err, &ce) {
					t.Errorf("error = %v, want no *CredentialsError", err)
				}
			}
			// A share call fails the same way and sends nothing to the CRM API.
			_, err = c.Share(t.Context(), "Deals", "1", []Share{{Recipient: Recipient{Type: RecipientUser, ID: "2"}, Permission: PermissionReadOnly}})
			if err == nil || errors.As(err, &ce) != (tt.wantCreds != "") {
				t.Errorf("Share error = %v, want the same class of failure", err)
			}
			if n := len(s.seen()); n != 0 {
				t.Errorf("CRM requests = %d, want 0", n)
			}
			if got := mr.sum(t, "crmshare.zoho.token.refreshes", "result", tt.wantResult); got < 1 {
				t.Errorf("token.refreshes{result=%s} = %d, want ≥ 1", tt.wantResult, got)
			}
		})
	}
}

// TestThrottledRefreshKeepsValidToken: Zoho allows 10 refreshes per 10 minutes;
// when an early refresh is throttled the client carries on with its token.
func TestThrottledRefreshKeepsValidToken(t *testing.T) {
	const throttled = `{"error_description":"You have made too many requests continuously. Please try again after some time.","error":"Access Denied","status":"failure"}`
	s := newScripted(t, reply(204, ``))
	s.setToken(func(n int) (int, string) {
		if n == 1 {
			return 200, `{"access_token":"` + testAccessToken + `","expires_in":3600}`
		}
		return 200, throttled
	})
	var logs bytes.Buffer
	c := mustClient(t, s.URL, Config{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	clk := newClock()
	c.now = clk.Now
	ctx := t.Context()

	if _, err := c.SharedWith(ctx, "Deals", "1"); err != nil {
		t.Fatalf("first call: %v", err)
	}
	clk.Advance(56 * time.Minute) // past refreshAt (55m), before expiry (60m)
	if _, err := c.SharedWith(ctx, "Deals", "1"); err != nil {
		t.Fatalf("call during throttled early refresh: %v", err)
	}
	if got := s.tokenReplies.Load(); got != 2 {
		t.Errorf("token requests = %d, want 2 (one early refresh attempt)", got)
	}
	clk.Advance(time.Second)
	if _, err := c.SharedWith(ctx, "Deals", "1"); err != nil {
		t.Fatalf("call after a failed early refresh: %v", err)
	}
	if got := s.tokenReplies.Load(); got != 2 {
		t.Errorf("token requests = %d, want still 2 (no retry within %s)", got, earlyRetry)
	}
	for _, r := range s.seen() {
		if r.Auth != authScheme+testAccessToken {
			t.Errorf("request used auth %q, want the first token", r.Auth)
		}
	}

	clk.Advance(5 * time.Minute) // expired, and the refresh is still throttled
	_, err := c.SharedWith(ctx, "Deals", "1")
	var ze *Error
	if !errors.As(err, &ze) || !ze.Retryable() || !errors.Is(err, ErrRateLimited) {
		t.Fatalf("call after expiry = %v, want a retryable rate-limit *Error", err)
	}
	before := s.tokenReplies.Load()
	if _, err := c.SharedWith(ctx, "Deals", "1"); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("second call after expiry = %v, want rate-limited", err)
	}
	if got := s.tokenReplies.Load(); got != before {
		t.Errorf("token requests went from %d to %d while throttled, want no new request", before, got)
	}
	if strings.Contains(logs.String(), testAccessToken) {
		t.Errorf("logs contain the access token:\n%s", logs.String())
	}
}

// TestSecretsNeverLeak drives failing flows and checks that no credential or
// token appears in the rendered errors or logs.
func TestSecretsNeverLeak(t *testing.T) {
	secrets := []string{testClientSecret, testRefreshToken, testAccessToken}
	tests := []struct {
		name  string
		token func(n int) (int, string)
		crm   http.HandlerFunc
	}{
		{
			name:  "credentials rejected",
			token: func(int) (int, string) { return 200, `{"error":"invalid_client_secret"}` },
			crm:   reply(204, ``),
		},
		{
			name: "token refused by the API twice",
			crm:  reply(401, `{"code":"INVALID_TOKEN","details":{},"message":"invalid oauth token","status":"error"}`),
		},
		{
			name: "token endpoint 500 echoing the request",
			token: func(int) (int, string) {
				return 500, "client_secret=" + testClientSecret + "&refresh_token=" + testRefreshToken
			},
			crm: reply(204, ``),
		},
		{
			name: "API error echoing the header",
			crm:  reply(400, `{"code":"INVALID_DATA","details":{},"message":"bad","status":"error"}`+strings.Repeat(" ", 10)+"Zoho-oauthtoken "+testAccessToken),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newScripted(t, tt.crm)
			if tt.token != nil {
				s.setToken(tt.token)
			}
			var logs bytes.Buffer
			c := mustClient(t, s.URL, Config{Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
			var rendered []string
			for _, call := range []func() error{
				func() error { return c.CheckCredentials(t.Context()) },
				func() error {
					_, err := c.Share(t.Context(), "Deals", "1", []Share{{Recipient: Recipient{Type: RecipientUser, ID: "2"}, Permission: PermissionReadOnly}})
					return err
				},
				func() error { return c.RevokeAll(t.Context(), "Deals", "1") },
				func() error { _, err := c.UserByEmail(t.Context(), "x@example.com"); return err },
			} {
				if err := call(); err != nil {
					rendered = append(rendered, err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err))
				}
			}
			if len(rendered) == 0 {
				t.Fatal("no call failed; the flow does not exercise errors")
			}
			rendered = append(rendered, logs.String())
			for _, r := range rendered {
				for _, sec := range secrets {
					if strings.Contains(r, sec) {
						t.Errorf("secret %q leaked into %q", sec, r)
					}
				}
			}
		})
	}
}

func TestDataCenters(t *testing.T) {
	tests := []struct {
		dc           string
		wantTokenURL string
		wantAPI      string
	}{
		{"", "https://accounts.zoho.com/oauth/v2/token", "https://www.zohoapis.com"},
		{"us", "https://accounts.zoho.com/oauth/v2/token", "https://www.zohoapis.com"},
		{"eu", "https://accounts.zoho.eu/oauth/v2/token", "https://www.zohoapis.eu"},
		{"in", "https://accounts.zoho.in/oauth/v2/token", "https://www.zohoapis.in"},
		{"au", "https://accounts.zoho.com.au/oauth/v2/token", "https://www.zohoapis.com.au"},
		{"jp", "https://accounts.zoho.jp/oauth/v2/token", "https://www.zohoapis.jp"},
		{"ca", "https://accounts.zohocloud.ca/oauth/v2/token", "https://www.zohoapis.ca"},
		{"sa", "https://accounts.zoho.sa/oauth/v2/token", "https://www.zohoapis.sa"},
		{"cn", "https://accounts.zoho.com.cn/oauth/v2/token", "https://www.zohoapis.com.cn"},
	}
	for _, tt := range tests {
		t.Run("dc "+tt.dc, func(t *testing.T) {
			c, err := NewClient(Config{DataCenter: tt.dc, ClientID: "id", ClientSecret: "s", RefreshToken: "r"})
			if err != nil {
				t.Fatalf("NewClient: %v", err)
			}
			if got := c.tokens.oauth.Endpoint.TokenURL; got != tt.wantTokenURL {
				t.Errorf("token URL = %s, want %s", got, tt.wantTokenURL)
			}
			// With no api_domain in the token reply, the DC's domain is used.
			if got := c.tokens.apiBase(t.Context(), &oauth2.Token{}).String(); got != tt.wantAPI {
				t.Errorf("api base = %s, want %s", got, tt.wantAPI)
			}
		})
	}
}

func TestAPIDomainFromTokenReply(t *testing.T) {
	tests := []struct {
		name      string
		cfg       Config
		apiDomain string
		want      string
	}{
		{"same dc", Config{DataCenter: "eu"}, "https://www.zohoapis.eu", "https://www.zohoapis.eu"},
		{"sandbox of the dc", Config{DataCenter: "eu"}, "https://sandbox.zohoapis.eu", "https://sandbox.zohoapis.eu"},
		{"ca", Config{DataCenter: "ca"}, "https://www.zohoapis.ca", "https://www.zohoapis.ca"},
		{"other dc ignored", Config{DataCenter: "us"}, "https://www.zohoapis.eu", "https://www.zohoapis.com"},
		{"lookalike host ignored", Config{DataCenter: "us"}, "https://www.zohoapis.com.evil.example", "https://www.zohoapis.com"},
		{"plain http ignored", Config{DataCenter: "us"}, "http://www.zohoapis.com", "https://www.zohoapis.com"},
		{"APIURL wins", Config{DataCenter: "us", APIURL: "http://127.0.0.1:9000/"}, "https://www.zohoapis.com", "http://127.0.0.1:9000"},
		{"accounts override trusts the reply", Config{AccountsURL: "http://127.0.0.1:9001"}, "http://127.0.0.1:9002", "http://127.0.0.1:9002"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.ClientID, cfg.ClientSecret, cfg.RefreshToken = "id", "s", "r"
			c, err := NewClient(cfg)
			if err != nil {
				t.Fatalf("NewClient: %v", err)
			}
			tok := (&oauth2.Token{AccessToken: "a"}).WithExtra(map[string]any{"api_domain": tt.apiDomain})
			if got := c.tokens.apiBase(t.Context(), tok).String(); got != tt.want {
				t.Errorf("api base = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestTokenRequestShape(t *testing.T) {
	s := newScripted(t, reply(204, ``))
	c := mustClient(t, s.URL, Config{})
	if err := c.CheckCredentials(t.Context()); err != nil {
		t.Fatalf("CheckCredentials: %v", err)
	}
	s.mu.Lock()
	got := s.tokenForms
	s.mu.Unlock()
	want := []url.Values{{
		"grant_type": {"refresh_token"}, "refresh_token": {testRefreshToken},
		"client_id": {testClientID}, "client_secret": {testClientSecret},
	}}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("token request forms (-got +want):\n%s", diff)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		value string
		want  time.Duration
	}{
		{"", 0},
		{"7", 7 * time.Second},
		{" 0 ", 0},
		{"-3", 0},
		{"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			h := http.Header{}
			if tt.value != "" {
				h.Set("Retry-After", tt.value)
			}
			if got := retryAfter(h, now); got != tt.want {
				t.Errorf("retryAfter(%q) = %s, want %s", tt.value, got, tt.want)
			}
		})
	}
}

// TestTokenLifecycleAgainstEmulator follows one token from the emulator's
// legacy reply through early refresh to a revoked refresh token.
func TestTokenLifecycleAgainstEmulator(t *testing.T) {
	clk := newClock()
	emu, srv := startEmu(t, zohoemu.Config{TokenTTL: 30 * time.Minute, LegacyTokenReply: true, Now: clk.Now})
	c := emuClient(t, srv.URL, "v8", Config{})
	c.now = clk.Now
	ctx := t.Context()

	if _, err := c.SharedWith(ctx, "Deals", deal2); err != nil {
		t.Fatalf("first call: %v", err)
	}
	if got := c.tokens.cur.expiry.Sub(clk.Now()); got != 30*time.Minute {
		t.Errorf("token lifetime = %s, want 30m from expires_in_sec (expires_in is milliseconds)", got)
	}
	clk.Advance(26 * time.Minute) // 4 minutes left: inside the early window (min(5m, ttl/5))
	if _, err := c.SharedWith(ctx, "Deals", deal2); err != nil {
		t.Fatalf("call in the early window: %v", err)
	}
	if got := emu.TokenRefreshes(); got != 2 {
		t.Errorf("token refreshes = %d, want 2 (refreshed ahead of expiry)", got)
	}
	if got := emu.Requests().ByCode["INVALID_TOKEN"]; got != 0 {
		t.Errorf("INVALID_TOKEN replies = %d, want 0", got)
	}

	emu.RevokeRefreshToken(emuRefreshToken)
	_, err := c.Share(ctx, "Deals", deal, users(PermissionReadOnly, user(2)))
	var ce *CredentialsError
	if !errors.As(err, &ce) || ce.Code != "invalid_code" || !ce.Suspend() {
		t.Fatalf("Share after revocation = %v, want *CredentialsError invalid_code", err)
	}
	if err := c.CheckCredentials(ctx); !errors.Is(err, ErrCredentialsRejected) {
		t.Errorf("CheckCredentials after revocation = %v, want ErrCredentialsRejected", err)
	}
}

func TestCanceledContext(t *testing.T) {
	_, srv := startEmu(t, zohoemu.Config{Latency: 3 * time.Second})
	c := emuClient(t, srv.URL, "v8", Config{})
	if err := c.CheckCredentials(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := contextWithTimeout(t, 50*time.Millisecond)
	defer cancel()
	_, err := c.SharedWith(ctx, "Deals", deal2)
	var ze *Error
	if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &ze) || ze.Status != 0 || !ze.Retryable() {
		t.Fatalf("SharedWith past the deadline = %v, want a retryable status-0 *Error wrapping DeadlineExceeded", err)
	}
	c2 := emuClient(t, srv.URL, "v8", Config{Timeout: 50 * time.Millisecond})
	if err := c2.CheckCredentials(t.Context()); err != nil {
		t.Fatal(err)
	}
	_, err = c2.SharedWith(t.Context(), "Deals", deal2)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &ze) || !ze.Retryable() {
		t.Fatalf("SharedWith past Config.Timeout = %v, want a retryable *Error wrapping DeadlineExceeded", err)
	}
}
