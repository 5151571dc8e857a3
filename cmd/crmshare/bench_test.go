package main

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestMain lets the test binary stand in for the crmshare binary as the
// bench's infrastructure process: the bench starts its own executable with
// `bench --serve-infra` and benchInfraEnv set.
func TestMain(m *testing.M) {
	if os.Getenv(benchInfraEnv) == "1" && len(os.Args) > 1 && os.Args[1] == "bench" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := runBench(ctx, stdio{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}, os.Args[2:])
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// runBenchJSON runs `crmshare bench --json` with args and decodes its result.
func runBenchJSON(t *testing.T, args ...string) (benchResult, map[string]any) {
	t.Helper()
	got := runCLI(t, nil, nil, append([]string{"bench", "--json"}, args...)...)
	if got.code != exitOK {
		t.Fatalf("bench %v: exit %d\nstderr:\n%s", args, got.code, got.stderr)
	}
	var res benchResult
	if err := json.Unmarshal([]byte(got.stdout), &res); err != nil {
		t.Fatalf("bench output is not the result JSON: %v\n%s", err, got.stdout)
	}
	var fields map[string]any
	if err := json.Unmarshal([]byte(got.stdout), &fields); err != nil {
		t.Fatal(err)
	}
	return res, fields
}

func TestBenchJSONFields(t *testing.T) {
	res, fields := runBenchJSON(t, "--events", "200", "--mix", "grants", "--baseline")
	for _, k := range []string{
		"events", "events_per_sec", "intents_per_sec", "zoho_calls", "calls_per_intent", "zoho_utilisation",
		"http_429", "p50_ms", "p99_ms", "cpu_sec_per_1k_events", "peak_heap_bytes",
		"baseline_events_per_sec", "ratio_to_baseline",
		"ledger_baseline_events_per_sec", "ratio_to_ledger_baseline",
	} {
		if _, ok := fields[k]; !ok {
			t.Errorf("JSON has no %q", k)
		}
	}
	if res.Events != 200 {
		t.Errorf("events = %d, want 200", res.Events)
	}
	for name, v := range map[string]float64{
		"events_per_sec": res.EventsPerSec, "intents_per_sec": res.IntentsPerSec, "p50_ms": res.P50MS, "p99_ms": res.P99MS,
		"cpu_sec_per_1k_events": res.CPUSecPer1kEvents, "peak_heap_bytes": float64(res.PeakHeapBytes),
		"baseline_events_per_sec": res.BaselineEventsPerSec, "ratio_to_baseline": res.RatioToBaseline,
		"ledger_baseline_events_per_sec": res.LedgerBaselineEventsPerSec, "ratio_to_ledger_baseline": res.RatioToLedgerBaseline,
	} {
		if !(v > 0) || math.IsInf(v, 0) {
			t.Errorf("%s = %v, want a positive number", name, v)
		}
	}
	if res.P99MS < res.P50MS {
		t.Errorf("p99 %vms < p50 %vms", res.P99MS, res.P50MS)
	}
	for _, m := range []string{"GET", "POST", "PUT", "DELETE"} {
		if _, ok := res.ZohoCalls[m]; !ok {
			t.Errorf("zoho_calls has no %s", m)
		}
	}
	if diff := cmp.Diff(map[string]int{"ack": 200}, res.Decisions); diff != "" {
		t.Errorf("decisions (-want +got):\n%s", diff)
	}
}

// TestBenchCallCounts checks the call-count invariants of each mix: a
// first-time grant costs one call, a replay of applied events writes nothing,
// and a hot record's burst takes at most two writes.
func TestBenchCallCounts(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		check func(t *testing.T, r benchResult)
	}{
		{
			name: "first-time grants: one POST per intent",
			args: []string{"--mix", "grants", "--events", "200"},
			check: func(t *testing.T, r benchResult) {
				if r.Intents != 200 || r.ZohoCalls["POST"] != 200 || r.ShareCalls != 200 || r.CallsPerIntent != 1 {
					t.Errorf("intents %d, POST %d, share calls %d, per intent %v; want 200, 200, 200, 1",
						r.Intents, r.ZohoCalls["POST"], r.ShareCalls, r.CallsPerIntent)
				}
			},
		},
		{
			name: "replay: applied events are skipped, events already in Zoho write nothing new",
			args: []string{"--mix", "replay", "--events", "200"},
			check: func(t *testing.T, r benchResult) {
				want := []benchClass{
					{Class: "replay_in_ledger", Events: 100, ShareCalls: 0, CallsPerEvent: 0},
					// A POST that Zoho refuses as already visible, then a read.
					{Class: "replay_in_zoho", Events: 100, ShareCalls: 200, CallsPerEvent: 2},
				}
				if diff := cmp.Diff(want, r.Classes); diff != "" {
					t.Errorf("classes (-want +got):\n%s", diff)
				}
				if r.ZohoCalls["PUT"] != 0 || r.ZohoCalls["DELETE"] != 0 {
					t.Errorf("replay changed shares: %v", r.ZohoCalls)
				}
				if diff := cmp.Diff(map[string]int{"ack": 100, "skip_duplicate": 100}, r.Decisions); diff != "" {
					t.Errorf("decisions (-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "hot records: at most two writes per record",
			args: []string{"--mix", "hot", "--events", "200", "--latency", "50ms"},
			check: func(t *testing.T, r benchResult) {
				if r.RecordsWritten != 20 || r.MaxWritesPerRecord > 2 || r.MaxWritesPerRecord < 1 {
					t.Errorf("%d records written, at most %d writes on one; want 20 records, 1 or 2 writes", r.RecordsWritten, r.MaxWritesPerRecord)
				}
				if r.Intents != 200 {
					t.Errorf("intents = %d, want 200", r.Intents)
				}
				if r.ZohoUtilisation <= 0 {
					t.Errorf("utilisation = %v with latency, want > 0", r.ZohoUtilisation)
				}
			},
		},
		{
			name: "mixed: every event settles without dead letters",
			args: []string{"--mix", "mixed", "--events", "200"},
			check: func(t *testing.T, r benchResult) {
				if diff := cmp.Diff(map[string]int{"ack": 200}, r.Decisions); diff != "" {
					t.Errorf("decisions (-want +got):\n%s", diff)
				}
				if r.ZohoCalls["PUT"] == 0 || r.ZohoCalls["GET"] == 0 {
					t.Errorf("mixed made no reads or replacing writes: %v", r.ZohoCalls)
				}
				// The classes' calls, as the service counts them by action,
				// add up to the share calls the emulator saw.
				sum := 0
				for _, c := range r.Classes {
					if c.ShareCalls < 0 {
						t.Errorf("class %s: calls not told apart", c.Class)
					}
					sum += c.ShareCalls
				}
				if sum != r.ShareCalls || len(r.Classes) != 3 {
					t.Errorf("%d classes with %d share calls in all, want 3 adding up to the emulator's %d: %+v", len(r.Classes), sum, r.ShareCalls, r.Classes)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, _ := runBenchJSON(t, tt.args...)
			if res.HTTP429 != 0 {
				t.Errorf("http_429 = %d, want 0", res.HTTP429)
			}
			tt.check(t, res)
		})
	}
}

func TestBenchTable(t *testing.T) {
	got := runCLI(t, nil, nil, "bench", "--events", "20", "--mix", "hot")
	if got.code != exitOK {
		t.Fatalf("exit %d\n%s", got.code, got.stderr)
	}
	for _, row := range []string{"events/s", "intents/s", "zoho calls", "share calls per intent", "zoho utilisation", "429s", "latency p50 / p99", "cpu per 1,000 events", "peak heap"} {
		if !strings.Contains(got.stdout, row) {
			t.Errorf("table has no %q row:\n%s", row, got.stdout)
		}
	}
}

func TestBenchFlagErrors(t *testing.T) {
	tests := [][]string{
		{"--events", "0"},
		{"--mix", "everything"},
		{"--latency", "-1s"},
		{"--zoho-concurrency", "0"},
		{"extra"},
	}
	for _, args := range tests {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			got := runCLI(t, nil, nil, append([]string{"bench"}, args...)...)
			if got.code != exitUsage {
				t.Errorf("exit %d, want %d\nstderr: %s", got.code, exitUsage, got.stderr)
			}
		})
	}
}

func TestQuantile(t *testing.T) {
	// Scale 0: bucket k holds (2^k, 2^(k+1)].
	h := []exponentialHist{{scale: 0, offset: 0, counts: []uint64{50, 0, 0, 49, 1}}}
	tests := []struct {
		q    float64
		want float64
	}{
		{0.5, math.Sqrt2},        // bucket 0: (1, 2]
		{0.99, math.Pow(2, 3.5)}, // bucket 3: (8, 16]
		{1, math.Pow(2, 4.5)},
	}
	for _, tt := range tests {
		if got := quantile(h, tt.q); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("quantile(%v) = %v, want %v", tt.q, got, tt.want)
		}
	}
	if got := quantile(nil, 0.5); got != 0 {
		t.Errorf("quantile of nothing = %v, want 0", got)
	}
}

// TestBenchServeInfra checks the infrastructure process's contract: one
// line with where it serves, then it stops when its stdin closes.
func TestBenchServeInfra(t *testing.T) {
	got := runCLI(t, nil, strings.NewReader(""), "bench", "--serve-infra", "--events", "10", "--mix", "replay")
	if got.code != exitOK {
		t.Fatalf("exit %d\nstderr:\n%s", got.code, got.stderr)
	}
	var info benchInfraInfo
	if err := json.Unmarshal([]byte(got.stdout), &info); err != nil {
		t.Fatalf("stdout is not the info line: %v\n%s", err, got.stdout)
	}
	if !strings.HasPrefix(info.NATSURL, "nats://127.0.0.1:") || !strings.HasPrefix(info.ZohoURL, "http://127.0.0.1:") {
		t.Errorf("urls %q, %q; want loopback nats and http", info.NATSURL, info.ZohoURL)
	}
	if info.ClientSecret == "" || info.RefreshToken == "" || strings.Contains(got.stderr, info.ClientSecret) {
		t.Errorf("credentials missing from the info line or logged: stderr %q", got.stderr)
	}
}

// TestBenchPlan checks that every mix's generated events touch only the
// records its seed creates, and that its classes count every event.
func TestBenchPlan(t *testing.T) {
	for _, mix := range []string{mixGrants, mixReplay, mixMixed, mixHot} {
		t.Run(mix, func(t *testing.T) {
			p := newBenchPlan(mix, 101)
			deals, accts := p.records()
			have := make(map[string]bool)
			for _, id := range deals {
				have["Deals/"+id] = true
			}
			for _, id := range accts {
				have["Accounts/"+id] = true
			}
			for i := range p.n {
				e := p.event(i)
				module := "Deals"
				if e.typ == benchTypeAcct {
					module = "Accounts"
				}
				if !have[module+"/"+e.deal] {
					t.Errorf("event %d on %s/%s, which the seed does not create", i, module, e.deal)
				}
			}
			_, count := p.classes()
			total := 0
			for _, n := range count {
				total += n
			}
			if total != p.n {
				t.Errorf("classes count %d events, want %d", total, p.n)
			}
		})
	}
}
