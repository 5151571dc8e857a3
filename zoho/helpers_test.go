package zoho

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Credentials used against scripted servers. They are fakes, but the tests treat
// them as secrets and check they never show up in errors or logs.
const (
	testClientID     = "1000.TESTCLIENT"
	testClientSecret = "test-client-secret-value"
	testRefreshToken = "1000.test.refresh.value"
	testAccessToken  = "1000.test-access-token-value"
)

// scripted is a loopback server with Zoho's token endpoint and a handler for
// everything else; it records the CRM requests it saw.
type scripted struct {
	*httptest.Server
	tokenReplies atomic.Int64

	mu         sync.Mutex
	token      func(n int) (int, string) // nth token request (1-based) → status, body
	requests   []seenRequest
	tokenForms []url.Values
}

type seenRequest struct {
	Method, Path, Query, Auth string
	Body                      string
}

// newScripted starts a server whose token endpoint mints testAccessToken for an
// hour unless token is set, and whose CRM endpoints are served by h.
func newScripted(t testing.TB, h http.HandlerFunc) *scripted {
	t.Helper()
	s := &scripted{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/oauth/v2/token" {
			_ = r.ParseForm()
			s.mu.Lock()
			s.tokenForms = append(s.tokenForms, r.PostForm)
			s.mu.Unlock()
			n := int(s.tokenReplies.Add(1))
			status, body := http.StatusOK, `{"access_token":"`+testAccessToken+`","api_domain":"http://`+r.Host+`","token_type":"Bearer","expires_in":3600}`
			s.mu.Lock()
			if s.token != nil {
				status, body = s.token(n)
			}
			s.mu.Unlock()
			w.Header().Set("Content-Type", "application/json;charset=UTF-8")
			w.WriteHeader(status)
			io.WriteString(w, body)
			return
		}
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.requests = append(s.requests, seenRequest{
			Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery,
			Auth: r.Header.Get("Authorization"), Body: string(b),
		})
		s.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *scripted) setToken(f func(n int) (int, string)) {
	s.mu.Lock()
	s.token = f
	s.mu.Unlock()
}

func (s *scripted) seen() []seenRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]seenRequest(nil), s.requests...)
}

// reply serves a fixed status, headers and body.
func reply(status int, body string, header ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		if w.Header().Get("Content-Type") == "" && strings.HasPrefix(strings.TrimSpace(body), "{") {
			w.Header().Set("Content-Type", "application/json;charset=UTF-8")
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// mustClient returns a client for base (both API and accounts), filling the
// credentials when cfg leaves them empty.
func mustClient(t testing.TB, base string, cfg Config) *Client {
	t.Helper()
	if cfg.APIURL == "" {
		cfg.APIURL = base
	}
	if cfg.AccountsURL == "" {
		cfg.AccountsURL = base
	}
	if cfg.ClientID == "" {
		cfg.ClientID = testClientID
	}
	if cfg.ClientSecret == "" {
		cfg.ClientSecret = testClientSecret
	}
	if cfg.RefreshToken == "" {
		cfg.RefreshToken = testRefreshToken
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	return c
}

// jsonValue decodes s for comparing JSON documents regardless of key order.
func jsonValue(t testing.TB, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
	return v
}

// clock is a settable time source for token and cache expiry.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func contextWithTimeout(t testing.TB, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(t.Context(), d)
}
