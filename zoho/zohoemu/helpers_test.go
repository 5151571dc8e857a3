package zohoemu

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// IDs from the demo seed.
const (
	deal       = "4150868000002515001"
	deal2      = "4150868000002515002" // shared with ken (read_only); visible to li by other means
	account    = "4150868000000987001"
	contact    = "4150868000001176057" // parent: the account; owner maria
	integ      = "4150868000000225013"
	maria      = "4150868000001248015"
	ken        = "4150868000001199001"
	sam        = "4150868000001174048"
	li         = "4150868000001301777"
	former     = "4150868000001309999"
	newHire    = "4150868000001310001"
	emeaGroup  = "4150868000002000101"
	salesRole  = "4150868000002000201"
	devClient  = "1000.DEVCLIENT"
	devSecret  = "dev-secret"
	devRefresh = "1000.dev.refresh"
)

// clock is a settable time source for Config.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *clock) Add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.now = c.now.Add(d) }

type fixture struct {
	emu *Emulator
	srv *httptest.Server
	clk *clock
}

// newFixture serves an emulator with the demo seed and a settable clock; mutate
// adjusts the config first.
func newFixture(t testing.TB, mutate func(*Config)) *fixture {
	t.Helper()
	seed, err := DemoSeed()
	if err != nil {
		t.Fatal(err)
	}
	clk := newClock()
	cfg := Config{Seed: seed, Now: clk.Now}
	if mutate != nil {
		mutate(&cfg)
	}
	emu, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	return &fixture{emu: emu, srv: srv, clk: clk}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request; token "" sends no Authorization header.
func (f *fixture) do(t testing.TB, token, method, path, body string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, f.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Zoho-oauthtoken "+token)
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// token mints an access token for the demo client.
func (f *fixture) token(t testing.TB) string {
	t.Helper()
	resp, err := f.srv.Client().PostForm(f.srv.URL+"/oauth/v2/token", url.Values{
		"grant_type": {"refresh_token"}, "client_id": {devClient}, "client_secret": {devSecret}, "refresh_token": {devRefresh},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	if v.AccessToken == "" {
		t.Fatalf("no access token: error %q", v.Error)
	}
	return v.AccessToken
}

func sharePath(version, module, id string) string {
	return "/crm/" + version + "/" + module + "/" + id + "/actions/share"
}

// checkJSON compares a reply body with the wanted JSON, ignoring key order.
func checkJSON(t testing.TB, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("reply is not JSON: %v: %s", err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad want JSON: %v", err)
	}
	if diff := cmp.Diff(w, g); diff != "" {
		t.Errorf("body mismatch (-want +got):\n%s", diff)
	}
}

func checkStatus(t testing.TB, r response, want int) {
	t.Helper()
	if r.status != want {
		t.Errorf("status = %d, want %d (body %s)", r.status, want, r.body)
	}
}

const okEntry = `{"code":"SUCCESS","details":{},"message":"record will be shared successfully","status":"success"}`

func v8Share(id, perm string) string {
	return `{"shared_with":{"type":"users","id":"` + id + `"},"permission":"` + perm + `","type":"private","share_related_records":false}`
}

func v2Share(id, perm string) string {
	return `{"user":{"id":"` + id + `"},"permission":"` + perm + `","share_related_records":false}`
}

func body(entries ...string) string { return `{"share":[` + strings.Join(entries, ",") + `]}` }

func decodeJSON(t testing.TB, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}
