package zoho

import (
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/crmshare/crmshare/zoho/zohoemu"
)

// TestCreditsRunOut: the emulator's org has 12 credits a day. Once they are
// spent, the next call's 429 is taken for credits used up (the last
// X-API-CREDITS-REMAINING said none were left), so it asks to suspend, and
// Probe fails until the org has credits again.
func TestCreditsRunOut(t *testing.T) {
	seed := testSeed(2)
	seed.Org.DailyCredits = 12
	emu, srv := startEmu(t, zohoemu.Config{Seed: seed})
	c := emuClient(t, srv.URL, "v8", Config{MaxConcurrency: 4})
	for i := range 12 {
		if _, err := c.SharedWith(t.Context(), "Deals", deal2); err != nil {
			t.Fatalf("call %d of 12: %v", i+1, err)
		}
		var ze *Error
		if errors.As(c.Probe(t.Context()), &ze) {
			t.Fatalf("Probe with credits left = %v, want nil and no call", ze)
		}
	}
	if got := emu.Requests().ByMethod[http.MethodGet]; got != 12 {
		t.Fatalf("GET requests = %d, want 12 (Probe makes no call while calls succeed)", got)
	}
	_, err := c.SharedWith(t.Context(), "Deals", deal2)
	var ze *Error
	if !errors.As(err, &ze) || ze.Status != http.StatusTooManyRequests {
		t.Fatalf("call 13 = %v, want a 429 *Error", err)
	}
	if !ze.CreditsExhausted || !ze.Suspend() || !ze.Retryable() {
		t.Errorf("call 13: CreditsExhausted %v, Suspend %v, Retryable %v; want all true", ze.CreditsExhausted, ze.Suspend(), ze.Retryable())
	}
	if err := c.Probe(t.Context()); !errors.Is(err, ErrRateLimited) {
		t.Errorf("Probe without credits = %v, want a rate-limited error", err)
	}

	// The day turns (here: the org's budget is lifted).
	if err := emu.LoadSeed(&zohoemu.Seed{Org: &zohoemu.Org{ID: "org-test", ConcurrencyLimit: 10}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Probe(t.Context()); err != nil {
		t.Fatalf("Probe with credits back = %v, want nil", err)
	}
	if _, err := c.SharedWith(t.Context(), "Deals", deal2); err != nil {
		t.Fatalf("call after the probe: %v", err)
	}
	if err := c.Probe(t.Context()); err != nil {
		t.Errorf("Probe after a successful call = %v, want nil", err)
	}
}

// TestConcurrency429IsNotCreditsExhausted: 429s for too many calls at once,
// with credits to spare, do not ask to suspend.
func TestConcurrency429IsNotCreditsExhausted(t *testing.T) {
	emu, srv := startEmu(t, zohoemu.Config{ConcurrencyLimit: 2, Latency: 20 * time.Millisecond})
	c := emuClient(t, srv.URL, "v8", Config{MaxConcurrency: 20})
	if err := c.CheckCredentials(t.Context()); err != nil {
		t.Fatal(err)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seen int
	)
	for range 20 {
		wg.Go(func() {
			_, err := c.SharedWith(t.Context(), "Deals", deal2)
			var ze *Error
			if errors.As(err, &ze) && ze.Status == http.StatusTooManyRequests {
				mu.Lock()
				seen++
				mu.Unlock()
				if ze.Suspend() {
					t.Errorf("a concurrency 429 asked to suspend: %v", ze)
				}
			}
		})
	}
	wg.Wait()
	if seen == 0 || emu.Requests().TooManyRequests == 0 {
		t.Fatal("no 429 with 20 in flight against a limit of 2; the test proves nothing")
	}
}

// TestCreditWatch covers the rule that tells a credits 429 from a
// concurrency one.
func TestCreditWatch(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	hdr := func(v string) http.Header {
		h := http.Header{}
		if v != "" {
			h.Set("X-API-CREDITS-REMAINING", v)
		}
		return h
	}
	type step struct {
		at     time.Duration
		status int
		header string
		gone   bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"429 with no count is a concurrency 429", []step{{0, 429, "", false}, {time.Second, 429, "", false}}},
		{"429 after a count above the low mark", []step{{0, 200, "500", false}, {time.Second, 429, "", false}}},
		{"429 after a count at the low mark", []step{{0, 200, "4", false}, {time.Second, 429, "", true}}},
		{"429 after a count of zero", []step{{0, 200, "0", false}, {time.Second, 429, "", true}}},
		{"a count from over a day ago is stale", []step{{0, 200, "0", false}, {25 * time.Hour, 429, "", false}}},
		{"only 429s for two minutes", []step{{0, 429, "", false}, {time.Minute, 429, "", false}, {2 * time.Minute, 429, "", true}}},
		{"a success ends the run", []step{{0, 429, "", false}, {time.Minute, 204, "", false}, {2 * time.Minute, 429, "", false}}},
		{"a success without a count means a new day", []step{{0, 200, "1", false}, {time.Second, 429, "", true}, {time.Hour, 200, "", false}, {time.Hour + time.Second, 429, "", false}}},
		{"a success with a low count keeps the mark", []step{{0, 200, "1", false}, {time.Second, 429, "", true}, {time.Hour, 200, "3", false}, {time.Hour + time.Second, 429, "", true}}},
		{"a fresh count above the mark clears it", []step{{0, 200, "1", false}, {time.Second, 429, "", true}, {time.Hour, 200, "5000", false}, {time.Hour + time.Second, 429, "", false}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newCreditWatch(4)
			for i, s := range tt.steps {
				if got := w.observe(t0.Add(s.at), s.status, hdr(s.header)); got != s.gone {
					t.Errorf("step %d (%d at %v): gone = %v, want %v", i, s.status, s.at, got, s.gone)
				}
				if w.exhausted() != s.gone {
					t.Errorf("step %d: exhausted() = %v, want %v", i, w.exhausted(), s.gone)
				}
			}
		})
	}
}
