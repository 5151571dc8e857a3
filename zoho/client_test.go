package zoho

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crmshare/crmshare/zoho/zohoemu"
	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

func TestConfigValidate(t *testing.T) {
	good := Config{ClientID: "id", ClientSecret: "s", RefreshToken: "r"}
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr bool
	}{
		{"zero values take defaults", func(*Config) {}, false},
		{"every version", func(c *Config) { c.APIVersion = "v2.1" }, false},
		{"unknown version", func(c *Config) { c.APIVersion = "v7" }, true},
		{"unknown data centre", func(c *Config) { c.DataCenter = "mars" }, true},
		{"relative api url", func(c *Config) { c.APIURL = "zohoapis.com" }, true},
		{"accounts url with query", func(c *Config) { c.AccountsURL = "https://accounts.zoho.com?x=1" }, true},
		{"missing client id", func(c *Config) { c.ClientID = "" }, true},
		{"missing secret", func(c *Config) { c.ClientSecret = "" }, true},
		{"missing refresh token", func(c *Config) { c.RefreshToken = "" }, true},
		{"negative concurrency", func(c *Config) { c.MaxConcurrency = -1 }, true},
		{"negative timeout", func(c *Config) { c.Timeout = -time.Second }, true},
		{"negative ttl", func(c *Config) { c.UsersCacheTTL = -time.Second }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			tt.mod(&cfg)
			_, err := NewClient(cfg)
			if (err != nil) != tt.wantErr {
				t.Errorf("NewClient error = %v, want error %v", err, tt.wantErr)
			}
		})
	}
	t.Run("every problem at once", func(t *testing.T) {
		err := Config{APIVersion: "v9", DataCenter: "xx", MaxConcurrency: -2}.Validate()
		for _, want := range []string{"v9", "xx", "client id", "client secret", "refresh token", "max concurrency"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("Validate() = %v, want it to mention %q", err, want)
			}
		}
	})
	t.Run("defaults", func(t *testing.T) {
		c, err := NewClient(good)
		if err != nil {
			t.Fatal(err)
		}
		got := fmt.Sprint(c.APIVersion(), " ", cap(c.lim.slots), " ", c.timeout, " ", c.users.ttl, " ", c.notify)
		if want := "v8 10 15s 10m0s false"; got != want {
			t.Errorf("defaults = %q, want %q", got, want)
		}
	})
}

func TestSecretRedaction(t *testing.T) {
	const value = "super-secret-value"
	s := Secret(value)
	cfg := Config{ClientID: "id", ClientSecret: s, RefreshToken: s}
	var text, js bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("cfg", "secret", s, "config", cfg)
	slog.New(slog.NewJSONHandler(&js, nil)).Info("cfg", "secret", s, "config", cfg)
	marshalled, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	renderings := map[string]string{
		"%s": fmt.Sprintf("%s", s), "%v": fmt.Sprintf("%v", s), "%q": fmt.Sprintf("%q", s), "%x": fmt.Sprintf("%x", s),
		"%#v": fmt.Sprintf("%#v", s), "%+v config": fmt.Sprintf("%+v", cfg), "%#v config": fmt.Sprintf("%#v", cfg),
		"String": s.String(), "slog text": text.String(), "slog json": js.String(), "json": string(marshalled),
	}
	for name, got := range renderings {
		if strings.Contains(got, value) || strings.Contains(got, fmt.Sprintf("%x", value)) {
			t.Errorf("%s leaks the secret: %s", name, got)
		}
		if !strings.Contains(got, "REDACTED") {
			t.Errorf("%s = %q, want REDACTED", name, got)
		}
	}
	var back Secret
	if err := back.UnmarshalText([]byte(value)); err != nil || string(back) != value {
		t.Errorf("UnmarshalText kept %q, %v; want the value", string(back), err)
	}
}

// TestConcurrentExpiredTokenRefreshesOnce: fifty calls refused with the same
// expired token cause exactly one refresh.
func TestConcurrentExpiredTokenRefreshesOnce(t *testing.T) {
	emu, srv := startEmu(t, zohoemu.Config{ConcurrencyLimit: -1, Latency: 2 * time.Millisecond})
	c := emuClient(t, srv.URL, "v8", Config{MaxConcurrency: 50})
	if err := c.CheckCredentials(t.Context()); err != nil {
		t.Fatalf("CheckCredentials: %v", err)
	}
	emu.ExpireTokens()
	before := emu.TokenRefreshes()

	const n = 50
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = c.SharedWith(t.Context(), "Deals", deal2)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("call %d: %v", i, err)
		}
	}
	if got := emu.TokenRefreshes() - before; got != 1 {
		t.Errorf("refreshes after expiry = %d, want 1", got)
	}
	if got := emu.Requests().ByCode["INVALID_TOKEN"]; got == 0 {
		t.Errorf("INVALID_TOKEN replies = 0; the token was not expired, the test proves nothing")
	}
}

// TestConcurrencyLimitAvoids429: with the client limited to the org's limit,
// 200 concurrent calls never see a 429.
func TestConcurrencyLimitAvoids429(t *testing.T) {
	emu, srv := startEmu(t, zohoemu.Config{ConcurrencyLimit: 5, Latency: time.Millisecond})
	c := emuClient(t, srv.URL, "v8", Config{MaxConcurrency: 5})
	const n = 200
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = c.SharedWith(t.Context(), "Deals", deal2)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("call %d: %v", i, err)
		}
	}
	st := emu.Requests()
	if st.TooManyRequests != 0 {
		t.Errorf("429 replies = %d, want 0", st.TooManyRequests)
	}
	if got := st.ByMethod[http.MethodGet]; got != n {
		t.Errorf("GET requests = %d, want %d", got, n)
	}
}

// TestConcurrencyLimitIsEnforced checks the other side: without the client's
// limit, the same load does hit the emulator's, so the test above can fail.
func TestConcurrencyLimitIsEnforced(t *testing.T) {
	emu, srv := startEmu(t, zohoemu.Config{ConcurrencyLimit: 5, Latency: 20 * time.Millisecond})
	c := emuClient(t, srv.URL, "v8", Config{MaxConcurrency: 40})
	if err := c.CheckCredentials(t.Context()); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 40 {
		wg.Go(func() { _, _ = c.SharedWith(t.Context(), "Deals", deal2) })
	}
	wg.Wait()
	if emu.Requests().TooManyRequests == 0 {
		t.Error("no 429 with 40 in flight against a limit of 5")
	}
}

func TestThrottleHoldsRequests(t *testing.T) {
	emu, srv := startEmu(t, zohoemu.Config{})
	emu.SetFaults(zohoemu.Faults{Rules: []zohoemu.Fault{{Code: "TOO_MANY_REQUESTS", Count: 1, RetryAfter: zohoemu.Duration(time.Second)}}})
	c := emuClient(t, srv.URL, "v8", Config{})
	_, err := c.SharedWith(t.Context(), "Deals", deal2)
	var ze *Error
	if !errors.As(err, &ze) || ze.Status != 429 || ze.RetryAfter != time.Second {
		t.Fatalf("first call = %v, want 429 with Retry-After 1s", err)
	}
	// A caller whose deadline ends before the hold is told at once, without a request.
	ctx, cancel := contextWithTimeout(t, 100*time.Millisecond)
	defer cancel()
	before := emu.Requests().Total
	_, err = c.SharedWith(ctx, "Deals", deal2)
	if !errors.Is(err, ErrRateLimited) || !errors.As(err, &ze) || ze.RetryAfter <= 0 {
		t.Fatalf("call during the hold = %v, want a rate-limited *Error with RetryAfter", err)
	}
	if got := emu.Requests().Total; got != before {
		t.Errorf("requests during the hold = %d, want 0", got-before)
	}
	// A patient caller waits out the hold and succeeds.
	if _, err := c.SharedWith(t.Context(), "Deals", deal2); err != nil {
		t.Fatalf("call after the hold: %v", err)
	}
}

func TestUsers(t *testing.T) {
	for _, v := range dialects {
		t.Run(v, func(t *testing.T) {
			emu, srv := startEmu(t, zohoemu.Config{Seed: testSeed(450)})
			c := emuClient(t, srv.URL, v, Config{})
			got, err := c.Users(t.Context())
			if err != nil {
				t.Fatalf("Users: %v", err)
			}
			if len(got) != 451 { // 450 plus the integration user; disabled and unconfirmed left out
				t.Errorf("users = %d, want 451", len(got))
			}
			seen := map[string]bool{}
			for _, u := range got {
				if !u.Active() || seen[u.ID] {
					t.Errorf("user %+v: inactive or repeated", u)
				}
				seen[u.ID] = true
			}
			if got := emu.Requests().ByRoute["GET /crm/"+v+"/users 200"]; got != 3 {
				t.Errorf("users pages fetched = %d, want 3", got)
			}
		})
	}
}

func TestUserCache(t *testing.T) {
	emu, srv := startEmu(t, zohoemu.Config{})
	c := emuClient(t, srv.URL, "v8", Config{UsersCacheTTL: time.Minute})
	clk := newClock()
	c.now = clk.Now
	ctx := t.Context()
	pages := func() int { return emu.Requests().ByRoute["GET /crm/v8/users 200"] }

	u, err := c.UserByEmail(ctx, "  user.3@ACME.example ")
	if err != nil {
		t.Fatalf("UserByEmail: %v", err)
	}
	want := User{ID: user(3), Email: "User.3@Acme.example", FullName: "User 3", Status: "active", Confirm: true}
	if diff := cmp.Diff(u, want); diff != "" {
		t.Errorf("UserByEmail (-got +want):\n%s", diff)
	}
	if u, err := c.UserByID(ctx, user(3)); err != nil || u.ID != user(3) {
		t.Errorf("UserByID = %+v, %v", u, err)
	}
	if got := pages(); got != 1 {
		t.Fatalf("user list fetches = %d, want 1", got)
	}

	// Misses within the TTL do not refresh, however many.
	for _, email := range []string{"nobody@acme.example", "former.rep@acme.example", "new.hire@acme.example", "nobody@acme.example"} {
		_, err := c.UserByEmail(ctx, email)
		var r interface{ Retryable() bool }
		if !errors.Is(err, ErrUserNotFound) || !errors.As(err, &r) || r.Retryable() {
			t.Errorf("UserByEmail(%s) = %v, want permanent ErrUserNotFound", email, err)
		}
	}
	if _, err := c.UserByID(ctx, former); !errors.Is(err, ErrUserNotFound) {
		t.Errorf("UserByID(disabled) = %v, want ErrUserNotFound", err)
	}
	if got := pages(); got != 1 {
		t.Errorf("user list fetches after misses within the TTL = %d, want 1", got)
	}

	// A user added later is found by the first miss after the TTL, once.
	if err := emu.LoadSeed(&zohoemu.Seed{Users: []zohoemu.User{{ID: "4150868000001400001", Email: "late@acme.example", Status: "active", Confirm: true}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UserByEmail(ctx, "late@acme.example"); !errors.Is(err, ErrUserNotFound) {
		t.Errorf("new user within the TTL = %v, want ErrUserNotFound (no refresh yet)", err)
	}
	clk.Advance(time.Minute)
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if u, err := c.UserByEmail(ctx, "LATE@acme.example"); err != nil || u.ID != "4150868000001400001" {
				t.Errorf("new user after the TTL = %+v, %v", u, err)
			}
		})
	}
	wg.Wait()
	if _, err := c.UserByEmail(ctx, "still-nobody@acme.example"); !errors.Is(err, ErrUserNotFound) {
		t.Errorf("miss = %v, want ErrUserNotFound", err)
	}
	if got := pages(); got != 2 {
		t.Errorf("user list fetches = %d, want 2 (one per TTL)", got)
	}

	// A failed refresh still answers hits from the old list.
	clk.Advance(time.Minute)
	emu.SetFaults(zohoemu.Faults{Rules: []zohoemu.Fault{{Code: "INTERNAL_ERROR", Count: 2, Paths: []string{"/users"}}}})
	if u, err := c.UserByEmail(ctx, "user.3@acme.example"); err != nil || u.ID != user(3) {
		t.Errorf("hit during a failed refresh = %+v, %v; want the cached user", u, err)
	}
	_, err = c.UserByEmail(ctx, "nobody@acme.example")
	var ze *Error
	if !errors.As(err, &ze) || !ze.Retryable() || errors.Is(err, ErrUserNotFound) {
		t.Errorf("miss during a failed refresh = %v, want the retryable refresh error", err)
	}
}

// TestZohoCodeOnHTTPSpan: with the transport wrapped by otelhttp, the client
// span of a refused request carries zoho.code, and metrics count it.
func TestZohoCodeOnHTTPSpan(t *testing.T) {
	emu, srv := startEmu(t, zohoemu.Config{})
	emu.SetFaults(zohoemu.Faults{Rules: []zohoemu.Fault{{Code: "SHARE_LIMIT_EXCEEDED", Count: 1, Methods: []string{"POST"}}}})
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	mr := newMetricReader(t)
	hc := &http.Client{Transport: otelhttp.NewTransport(http.DefaultTransport, otelhttp.WithTracerProvider(tp))}
	c := emuClient(t, srv.URL, "v8", Config{HTTPClient: hc, MeterProvider: mr.provider})

	_, err := c.Share(t.Context(), "Deals", deal, users(PermissionReadOnly, user(2)))
	if !errors.Is(err, ErrShareLimitExceeded) {
		t.Fatalf("Share = %v, want ErrShareLimitExceeded", err)
	}
	if _, err := c.SharedWith(t.Context(), "Deals", deal2); err != nil {
		t.Fatal(err)
	}
	codes := map[string]string{}
	for _, s := range rec.Ended() {
		var method, code string
		for _, kv := range s.Attributes() {
			switch kv.Key {
			case "http.request.method":
				method = kv.Value.Emit()
			case attribute.Key("zoho.code"):
				code = kv.Value.Emit()
			}
		}
		codes[method] = code
	}
	if diff := cmp.Diff(codes, map[string]string{"POST": "SHARE_LIMIT_EXCEEDED", "GET": ""}); diff != "" {
		t.Errorf("zoho.code by span (-got +want):\n%s", diff)
	}
	for _, s := range rec.Ended() {
		for _, kv := range s.Attributes() {
			if strings.Contains(kv.Value.Emit(), "Zoho-oauthtoken") {
				t.Errorf("span attribute %s carries the Authorization header", kv.Key)
			}
		}
	}
	if got := mr.sum(t, "crmshare.zoho.requests", "code", "SHARE_LIMIT_EXCEEDED"); got != 1 {
		t.Errorf("requests{code=SHARE_LIMIT_EXCEEDED} = %d, want 1", got)
	}
	if got := mr.sum(t, "crmshare.zoho.requests", "method", "GET"); got != 1 {
		t.Errorf("requests{method=GET} = %d, want 1", got)
	}
	if got := mr.histogramCount(t, "crmshare.zoho.request.duration"); got != 2 {
		t.Errorf("request.duration observations = %d, want 2", got)
	}
	if got := mr.sum(t, "crmshare.zoho.token.refreshes", "result", "ok"); got != 1 {
		t.Errorf("token.refreshes{result=ok} = %d, want 1", got)
	}
}

// TestShareRoundTrip applies writes in each dialect and reads them back.
func TestShareRoundTrip(t *testing.T) {
	for _, v := range dialects {
		t.Run(v, func(t *testing.T) {
			emu, srv := startEmu(t, zohoemu.Config{})
			c := emuClient(t, srv.URL, v, Config{})
			ctx := t.Context()
			res, err := c.Share(ctx, "Deals", deal, []Share{
				{Recipient: Recipient{Type: RecipientUser, ID: user(2)}, Permission: PermissionReadWrite, ShareRelated: true},
				{Recipient: Recipient{Type: RecipientUser, ID: user(3)}, Permission: PermissionReadOnly},
			})
			if err != nil {
				t.Fatalf("Share: %v", err)
			}
			for i, r := range res {
				if r.Err != nil || r.Code != "SUCCESS" {
					t.Errorf("result %d = %+v, want SUCCESS", i, r)
				}
			}
			got, err := c.SharedWith(ctx, "Deals", deal)
			if err != nil {
				t.Fatalf("SharedWith: %v", err)
			}
			var shares []Share
			for _, e := range got {
				if !e.Direct(deal) {
					t.Errorf("entry %+v is not direct", e)
				}
				shares = append(shares, e.Share())
			}
			want := []Share{
				{Recipient: Recipient{Type: RecipientUser, ID: user(2)}, Permission: PermissionReadWrite, ShareRelated: true},
				{Recipient: Recipient{Type: RecipientUser, ID: user(3)}, Permission: PermissionReadOnly},
			}
			sortShares(shares)
			if diff := cmp.Diff(shares, want); diff != "" {
				t.Errorf("SharedWith (-got +want):\n%s", diff)
			}
			only, err := c.ListShares(ctx, "Deals", deal, ListQuery{SharedTo: user(3)})
			if err != nil || len(only) != 1 || only[0].Recipient.ID != user(3) {
				t.Errorf("ListShares(sharedTo) = %+v, %v; want user(3) only", only, err)
			}
			// PUT replaces the list: user(2) loses access, user(3) changes permission.
			if res, err := c.UpdateShares(ctx, "Deals", deal, users(PermissionFullAccess, user(3))); firstErr(res, err) != nil {
				t.Fatalf("UpdateShares: %v", firstErr(res, err))
			}
			if diff := cmp.Diff(emu.Shares("Deals", deal), []zohoemu.Entry{{Type: "users", ID: user(3), Permission: "full_access"}}); diff != "" {
				t.Errorf("after PUT (-got +want):\n%s", diff)
			}
			if err := c.RevokeAll(ctx, "Deals", deal); err != nil {
				t.Fatalf("RevokeAll: %v", err)
			}
			if got, err := c.SharedWith(ctx, "Deals", deal); err != nil || got != nil {
				t.Errorf("SharedWith after RevokeAll = %+v, %v; want nil, nil", got, err)
			}
			if err := c.RevokeAll(ctx, "Deals", deal); !errors.Is(err, ErrNothingToRevoke) {
				t.Errorf("second RevokeAll = %v, want ErrNothingToRevoke", err)
			}
		})
	}
}

func sortShares(s []Share) {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j].Recipient.ID < s[i].Recipient.ID {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
}

func TestInheritedEntriesAreNotDirect(t *testing.T) {
	_, srv := startEmu(t, zohoemu.Config{})
	c := emuClient(t, srv.URL, "v8", Config{})
	ctx := t.Context()
	if res, err := c.Share(ctx, "Accounts", account, []Share{{Recipient: Recipient{Type: RecipientUser, ID: user(4)}, Permission: PermissionReadOnly, ShareRelated: true}}); firstErr(res, err) != nil {
		t.Fatalf("Share: %v", firstErr(res, err))
	}
	got, err := c.SharedWith(ctx, "Contacts", contact)
	if err != nil {
		t.Fatalf("SharedWith: %v", err)
	}
	if len(got) != 1 || got[0].Direct(contact) || got[0].SharedThroughID != account || got[0].Recipient.ID != user(4) {
		t.Errorf("contact entries = %+v, want one inherited through the account", got)
	}
}
