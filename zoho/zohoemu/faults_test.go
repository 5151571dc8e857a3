package zohoemu

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestLimits_concurrency(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.ConcurrencyLimit = 1; c.Latency = time.Hour })
	tok := f.token(t)
	ctx, cancel := context.WithCancel(t.Context())
	held := make(chan error, 1)
	go func() {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.srv.URL+sharePath("v8", "Deals", deal2), nil)
		if err != nil {
			held <- err
			return
		}
		req.Header.Set("Authorization", "Zoho-oauthtoken "+tok)
		resp, err := f.srv.Client().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		held <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for f.emu.State().InFlight != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the first call never went in flight")
		}
		select {
		case <-time.After(time.Millisecond):
		case err := <-held:
			t.Fatalf("held call returned early: %v", err)
		}
	}
	got := f.do(t, tok, http.MethodGet, sharePath("v8", "Deals", deal2), "")
	checkStatus(t, got, http.StatusTooManyRequests)
	checkJSON(t, got.body, `{"code":"TOO_MANY_REQUESTS","details":{},"message":"Too many requests","status":"error"}`)
	cancel()
	if err := <-held; !errors.Is(err, context.Canceled) {
		t.Errorf("held call: %v, want context.Canceled", err)
	}
	if got := f.emu.Requests().TooManyRequests; got != 1 {
		t.Errorf("TooManyRequests = %d, want 1", got)
	}
}

func TestLimits_credits(t *testing.T) {
	f := newFixture(t, nil)
	if err := f.emu.LoadSeed(&Seed{Org: &Org{ID: "org-small", DailyCredits: 4}}); err != nil {
		t.Fatal(err)
	}
	tok := f.token(t)
	path := sharePath("v8", "Deals", deal2)
	var statuses []int
	var remaining []string
	for range 5 {
		got := f.do(t, tok, http.MethodGet, path, "")
		statuses = append(statuses, got.status)
		remaining = append(remaining, got.header.Get("X-API-CREDITS-REMAINING"))
	}
	if diff := cmp.Diff([]int{200, 200, 200, 200, 429}, statuses); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"", "2", "1", "0", ""}, remaining); diff != "" {
		t.Errorf("X-API-CREDITS-REMAINING (-want +got):\n%s", diff)
	}
	f.token(t) // token calls are free
	f.clk.Add(24 * time.Hour)
	checkStatus(t, f.do(t, f.token(t), http.MethodGet, path, ""), http.StatusOK)
}

func TestFaults_errorsBeforeAndAfter(t *testing.T) {
	tests := []struct {
		name       string
		fault      Fault
		wantStatus int
		wantBody   string
		applied    bool
		retryAfter string
	}{
		{"500 before", Fault{Code: "INTERNAL_ERROR", Count: 1}, 500,
			`{"code":"INTERNAL_ERROR","details":{},"message":"Internal Server Error","status":"error"}`, false, ""},
		{"500 after: unknown outcome", Fault{Code: "INTERNAL_ERROR", Count: 1, After: true}, 500,
			`{"code":"INTERNAL_ERROR","details":{},"message":"Internal Server Error","status":"error"}`, true, ""},
		{"429 with Retry-After", Fault{Code: "TOO_MANY_REQUESTS", Count: 1, RetryAfter: Duration(1500 * time.Millisecond)}, 429,
			`{"code":"TOO_MANY_REQUESTS","details":{},"message":"Too many requests","status":"error"}`, false, "2"},
		{"share limit", Fault{Code: "SHARE_LIMIT_EXCEEDED", Count: 1}, 403,
			`{"code":"SHARE_LIMIT_EXCEEDED","details":{},"message":"The record sharing limit has been reached","status":"error"}`, false, ""},
		{"scheduler", Fault{Code: "CANNOT_PROCESS", Count: 1}, 403,
			`{"code":"CANNOT_PROCESS","details":{},"message":"Scheduler is running","status":"error"}`, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			tok := f.token(t)
			f.emu.SetFaults(Faults{Rules: []Fault{tt.fault}})
			got := f.do(t, tok, http.MethodPost, sharePath("v8", "Deals", deal), body(v8Share(ken, "read_only")))
			checkStatus(t, got, tt.wantStatus)
			checkJSON(t, got.body, tt.wantBody)
			if ra := got.header.Get("Retry-After"); ra != tt.retryAfter {
				t.Errorf("Retry-After = %q, want %q", ra, tt.retryAfter)
			}
			if applied := f.emu.Shares("Deals", deal) != nil; applied != tt.applied {
				t.Errorf("applied = %v, want %v", applied, tt.applied)
			}
			// Count 1: the next call goes through.
			got = f.do(t, tok, http.MethodGet, sharePath("v8", "Deals", deal), "")
			if tt.applied {
				checkStatus(t, got, http.StatusOK)
			} else {
				checkStatus(t, got, http.StatusNoContent)
			}
		})
	}
}

func TestFaults_drop(t *testing.T) {
	for _, after := range []bool{false, true} {
		t.Run(map[bool]string{false: "before", true: "after"}[after], func(t *testing.T) {
			f := newFixture(t, nil)
			tok := f.token(t)
			f.emu.SetFaults(Faults{Rules: []Fault{{Kind: "drop", Count: 1, After: after, Methods: []string{"POST"}}}})
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, f.srv.URL+sharePath("v8", "Deals", deal), strings.NewReader(body(v8Share(ken, "read_only"))))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Zoho-oauthtoken "+tok)
			resp, err := f.srv.Client().Do(req)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("got a %d reply, want the connection dropped", resp.StatusCode)
			}
			if applied := f.emu.Shares("Deals", deal) != nil; applied != after {
				t.Errorf("applied = %v, want %v", applied, after)
			}
			st := f.emu.Requests()
			if st.ByCode["DROPPED"] != 1 || st.Writes != 1 && after {
				t.Errorf("stats: dropped %d, writes %d", st.ByCode["DROPPED"], st.Writes)
			}
		})
	}
}

func TestFaults_plainTextPathsAndMethods(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.token(t)
	f.emu.SetFaults(Faults{Rules: []Fault{{Status: 502, Count: 5, Paths: []string{"/users"}, Methods: []string{"GET"}}}})
	got := f.do(t, tok, http.MethodGet, "/crm/v8/users", "")
	checkStatus(t, got, http.StatusBadGateway)
	if string(got.body) != "Bad Gateway" || !strings.HasPrefix(got.header.Get("Content-Type"), "text/plain") {
		t.Errorf("body %q, Content-Type %q, want a plain-text Bad Gateway", got.body, got.header.Get("Content-Type"))
	}
	checkStatus(t, f.do(t, tok, http.MethodGet, sharePath("v8", "Deals", deal2), ""), http.StatusOK)
	// Token calls are struck only by rules that name them.
	f.emu.SetFaults(Faults{Rules: []Fault{{Code: "INTERNAL_ERROR", Count: 1, Paths: []string{"/oauth/v2/token"}}}})
	resp, err := f.srv.Client().Post(f.srv.URL+"/oauth/v2/token", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("token status = %d, want 500", resp.StatusCode)
	}
}

func TestFaults_deterministic(t *testing.T) {
	run := func(seed uint64) []int {
		f := newFixture(t, nil)
		tok := f.token(t)
		f.emu.SetFaults(Faults{Seed: seed, Rules: []Fault{
			{Code: "TOO_MANY_REQUESTS", Rate: 0.2, Burst: 3},
			{Code: "INTERNAL_ERROR", Rate: 0.2, Skip: 2},
		}})
		var out []int
		for range 40 {
			out = append(out, f.do(t, tok, http.MethodGet, sharePath("v8", "Deals", deal2), "").status)
		}
		return out
	}
	a, b := run(7), run(7)
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("same seed, different faults (-first +second):\n%s", diff)
	}
	count := map[int]int{}
	for _, s := range a {
		count[s]++
	}
	if count[200] == 0 || count[429] == 0 || count[500] == 0 {
		t.Errorf("statuses %v: want some 200s, 429s and 500s", count)
	}
	if diff := cmp.Diff(a, run(8)); diff == "" {
		t.Error("different seeds gave the same faults")
	}
}

func TestFaults_schedulerWindow(t *testing.T) {
	for _, v := range []struct {
		version string
		status  int
	}{{"v2", 400}, {"v2.1", 400}, {"v8", 403}} {
		t.Run(v.version, func(t *testing.T) {
			f := newFixture(t, nil)
			tok := f.token(t)
			f.emu.SetFaults(Faults{SchedulerWindow: Duration(5 * time.Second)})
			mk := v2Share
			if v.version == "v8" {
				mk = v8Share
			}
			path := sharePath(v.version, "Deals", deal)
			if got := f.do(t, tok, http.MethodPost, path, body(mk(ken, "read_only"))); got.status >= 300 {
				t.Fatalf("first write: %d %s", got.status, got.body)
			}
			got := f.do(t, tok, http.MethodDelete, path, "")
			checkStatus(t, got, v.status)
			checkJSON(t, got.body, `{"code":"CANNOT_PROCESS","details":{},"message":"Scheduler is running","status":"error"}`)
			// Other records and reads are not held up.
			checkStatus(t, f.do(t, tok, http.MethodGet, path, ""), http.StatusOK)
			f.clk.Add(5 * time.Second)
			checkStatus(t, f.do(t, tok, http.MethodDelete, path, ""), http.StatusOK)
		})
	}
}

func TestFaults_validate(t *testing.T) {
	tests := []struct {
		name string
		f    Faults
		ok   bool
	}{
		{"empty", Faults{}, true},
		{"error", Faults{Rules: []Fault{{Code: "INTERNAL_ERROR", Rate: 0.5}}}, true},
		{"no code or status", Faults{Rules: []Fault{{Rate: 0.5}}}, false},
		{"never strikes", Faults{Rules: []Fault{{Code: "INTERNAL_ERROR"}}}, false},
		{"rate above 1", Faults{Rules: []Fault{{Code: "INTERNAL_ERROR", Rate: 2}}}, false},
		{"unknown kind", Faults{Rules: []Fault{{Kind: "melt", Count: 1}}}, false},
		{"delay after", Faults{Rules: []Fault{{Kind: "delay", Delay: Duration(time.Second), After: true, Count: 1}}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.f.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate() = %v, want ok %v", err, tt.ok)
			}
		})
	}
}
