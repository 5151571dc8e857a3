package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/crmshare/crmshare/consumer"
	"github.com/crmshare/crmshare/zoho/zohoemu"
)

// faultSuiteSize is one variant of the fault suite.
type faultSuiteSize struct {
	name                    string
	events, records, users  int
	timeout                 time.Duration
	burstEvery, burstLength int // a burst of 429s every burstEvery matching requests
}

var (
	faultSuiteShort = faultSuiteSize{name: "short", events: 2000, records: 50, users: 20, timeout: 5 * time.Minute, burstEvery: 1500, burstLength: 3}
	faultSuiteLong  = faultSuiteSize{name: "long", events: 20000, records: 200, users: 50, timeout: 45 * time.Minute, burstEvery: 4000, burstLength: 4}
)

// TestFaultSuite runs the built crmshare binary against a seeded random event
// log while the Zoho emulator fails about 10% of calls with 5xx, 5% with
// dropped connections (before and after applying writes), bursts of 429 and
// "Scheduler is running" windows; the service is killed with SIGKILL and
// restarted three times, the JetStream server is restarted once on the same
// store, and the access tokens expire once. When the stream is fully
// processed, the emulator's shares must equal a model of the log applied in
// stream order per record, the dead-letter stream must hold exactly the
// events that are bad by construction, and no record may ever have had more
// than 10 user shares.
//
// The short variant (2,000 events, 50 records, 20 users) runs by default;
// CRMSHARE_FAULTSUITE=long runs 20,000 events over 200 records and 50 users;
// CRMSHARE_FAULTSUITE_SEED changes the event log and the faults. -short skips
// it.
func TestFaultSuite(t *testing.T) {
	if testing.Short() {
		t.Skip("fault suite: builds and runs the binary; skipped with -short")
	}
	size := faultSuiteShort
	switch v := os.Getenv("CRMSHARE_FAULTSUITE"); v {
	case "", "short":
	case "long":
		size = faultSuiteLong
	default:
		t.Fatalf("CRMSHARE_FAULTSUITE=%q: want short or long", v)
	}
	seed := uint64(20261123)
	if v := os.Getenv("CRMSHARE_FAULTSUITE_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("CRMSHARE_FAULTSUITE_SEED=%q: %v", v, err)
		}
		seed = n
	}
	t.Logf("seed %d (set CRMSHARE_FAULTSUITE_SEED to change it)", seed)
	log, err := newFSLog(seed, size.events, size.records, size.users)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), size.timeout)
	defer cancel()

	bin := buildCrmshare(t)
	ns := startNATSHarness(t)

	emu, err := zohoemu.New(zohoemu.Config{Seed: fsSeed(size.users, size.records)})
	if err != nil {
		t.Fatalf("zohoemu.New: %v", err)
	}
	zs := httptest.NewServer(emu)
	t.Cleanup(zs.Close)
	faults := fsFaults(seed, size)
	if err := faults.Validate(); err != nil {
		t.Fatalf("fault plan: %v", err)
	}
	emu.SetFaults(faults)

	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "crmshare.yaml")
	if err := os.WriteFile(cfgPath, []byte(fsConfigYAML(ns.url(), zs.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	proc := &serviceProc{bin: bin, cfg: cfgPath, logPath: filepath.Join(dir, "crmshare.log")}
	t.Cleanup(func() {
		if err := proc.stop(30 * time.Second); err != nil {
			t.Logf("stop crmshare at cleanup: %v", err)
		}
		if t.Failed() {
			t.Logf("service log (tail):\n%s", proc.tail(8000))
		}
	})

	nc, err := nats.Connect(ns.url(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatalf("connect to nats: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}

	started := time.Now()
	proc.start(t)
	cons := waitForConsumer(ctx, t, js, proc)
	fsPublish(ctx, t, js, log)
	t.Logf("%s: published %d events (%d bad) in %v", size.name, len(log.events), len(log.badIDs()), time.Since(started).Round(time.Millisecond))

	// The disruptions, at fractions of the log settled.
	steps := []struct {
		at   float64
		name string
		do   func()
	}{
		{0.15, "kill -9 and restart the service", func() { proc.kill(t); proc.start(t) }},
		{0.35, "restart the jetstream server", func() {
			if err := ns.restart(ctx); err != nil {
				t.Fatal(err)
			}
		}},
		{0.50, "kill -9 and restart the service", func() { proc.kill(t); proc.start(t) }},
		{0.65, "expire every access token", emu.ExpireTokens},
		{0.80, "kill -9 and restart the service", func() { proc.kill(t); proc.start(t) }},
	}
	total := uint64(len(log.events))
	for _, s := range steps {
		waitSettled(ctx, t, cons, proc, func(settled uint64, _ *jetstream.ConsumerInfo) bool {
			return float64(settled) >= s.at*float64(total)
		}, fmt.Sprintf("%.0f%% settled before %q", 100*s.at, s.name))
		t.Logf("%v: %s", time.Since(started).Round(time.Millisecond), s.name)
		s.do()
	}
	info := waitSettled(ctx, t, cons, proc, func(settled uint64, ci *jetstream.ConsumerInfo) bool {
		return settled == total && ci.NumAckPending == 0 && ci.NumPending == 0
	}, "the whole stream settled")
	elapsed := time.Since(started)
	dlqBefore := fsDeadLetters(ctx, t, js)
	if err := proc.stop(30 * time.Second); err != nil {
		t.Errorf("last crmshare run did not exit cleanly on SIGINT: %v", err)
	}
	emu.SetFaults(zohoemu.Faults{})
	stats := emu.Requests()

	t.Run("shares equal the model", func(t *testing.T) {
		for r := 1; r <= size.records; r++ {
			got := emu.Shares("Deals", fsRID(r))
			want := log.entries(r)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Deals/%s (record %d): shares (-model +emulator):\n%s\nits last events: %s", fsRID(r), r, diff, log.history(r, 8))
			}
		}
	})
	t.Run("dead letters are exactly the bad events", func(t *testing.T) {
		dlq := fsDeadLetters(ctx, t, js)
		if diff := cmp.Diff(dlqBefore, dlq); diff != "" {
			t.Errorf("dead letters changed after the stream settled (-settled +after stop):\n%s", diff)
		}
		var got []string
		for _, d := range dlq {
			got = append(got, d.ID)
			if d.Reason == "" {
				t.Errorf("dead letter %s has no %s header", d.ID, consumer.HeaderError)
			}
		}
		slices.Sort(got)
		want := log.badIDs()
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("dead-lettered event ids (-bad by construction +dead-letter stream):\n%s", diff)
			for _, d := range dlq {
				if _, bad := slices.BinarySearch(want, d.ID); !bad {
					t.Errorf("unexpected dead letter %s: %s", d.ID, d.Reason)
				}
			}
		}
	})
	t.Run("never more than 10 users on a record", func(t *testing.T) {
		if got := emu.MaxUsersEverShared(); got > fsMaxUsers {
			t.Errorf("MaxUsersEverShared() = %d, want at most %d", got, fsMaxUsers)
		}
	})
	t.Run("every fault struck", func(t *testing.T) {
		for _, code := range []string{"INTERNAL_ERROR", "DROPPED", "TOO_MANY_REQUESTS", "CANNOT_PROCESS", "INVALID_TOKEN"} {
			if stats.ByCode[code] == 0 {
				t.Errorf("no reply with code %s: the fault was not injected (codes: %v)", code, stats.ByCode)
			}
		}
	})
	t.Run("service log: no secrets or data races, a reconnect", func(t *testing.T) {
		b, err := os.ReadFile(proc.logPath)
		if err != nil {
			t.Fatal(err)
		}
		secrets := append([]string{fsClientSecret, fsRefreshToken, "Zoho-oauthtoken", "WARNING: DATA RACE"}, emu.IssuedTokens()...)
		if len(secrets) < 5 {
			t.Errorf("the emulator issued no access token")
		}
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("service log contains %q", s)
			}
		}
		// The service's own connection came back after the server restart.
		if n := bytes.Count(b, []byte(`"msg":"nats reconnected"`)); n == 0 {
			t.Errorf("the service never logged a nats reconnect")
		}
		t.Logf("service log: %d nats reconnects, %d starts that fenced records of unsettled events",
			bytes.Count(b, []byte(`"msg":"nats reconnected"`)), bytes.Count(b, []byte(`"msg":"fenced the records of unsettled events`)))
	})

	var intents int
	for _, n := range log.intents {
		intents += n
	}
	meth := func(m string) int { return stats.ByMethod[m] }
	t.Logf("%s: %d events (%d intents: %v; %d dead letters) settled in %v with %d service starts, 1 nats restart; consumer: %d redelivered at the end",
		size.name, total, intents, fmtCounts(log.intents), len(dlqBefore), elapsed.Round(time.Millisecond), proc.starts, info.NumRedelivered)
	t.Logf("zoho: %d requests (GET %d, POST %d, PUT %d, DELETE %d), %d share writes (%d applied), %d token refreshes; codes %s",
		stats.Total, meth("GET"), meth("POST"), meth("PUT"), meth("DELETE"), stats.Writes, stats.AppliedWrites, stats.TokenRefreshes, fmtCounts(stats.ByCode))
	if intents > 0 {
		t.Logf("writes per intent: %.2f sent, %.2f applied; share calls (incl. GET) per intent: %.2f",
			float64(stats.Writes)/float64(intents), float64(stats.AppliedWrites)/float64(intents),
			float64(stats.Writes+fsShareGets(stats))/float64(intents))
	}
}

// fsFaults is the suite's fault plan: 10% 5xx and 5% dropped connections,
// half of each after the write was applied (writes only), bursts of 429s,
// and a "Scheduler is running" window after every write.
func fsFaults(seed uint64, size faultSuiteSize) zohoemu.Faults {
	f := zohoemu.Faults{
		Seed:            seed,
		SchedulerWindow: zohoemu.Duration(20 * time.Millisecond),
		Rules: []zohoemu.Fault{
			{Code: "INTERNAL_ERROR", Rate: 0.05},
			{Kind: "drop", Rate: 0.025},
			{Code: "INTERNAL_ERROR", Rate: 0.05, After: true},
			{Kind: "drop", Rate: 0.025, After: true},
		},
	}
	for i := 1; i*size.burstEvery < size.events*3; i++ {
		b := zohoemu.Fault{Code: "TOO_MANY_REQUESTS", Skip: i * size.burstEvery, Count: size.burstLength}
		if i%2 == 0 {
			b.RetryAfter = zohoemu.Duration(time.Second)
		}
		f.Rules = append(f.Rules, b)
	}
	return f
}

// fsConfigYAML is the service's config: the test's NATS and emulator, short
// redelivery delays, no listeners and no traces.
func fsConfigYAML(natsURL, zohoURL string) string {
	return `nats:
  url: ` + natsURL + `
  stream:
    name: CRM_EVENTS
    subjects: ["crm.events.>"]
    create: true
    duplicate_window: 2m
  consumer:
    durable: crmshare
    ack_wait: 3s
    max_deliver: 100
    backoff: [100ms, 200ms, 400ms, 800ms]
    max_ack_pending: 64
  concurrency: 16
  ledger:
    bucket: CRMSHARE_LEDGER
  dead_letter:
    stream: CRM_EVENTS_DLQ
    subject: crm.dlq
zoho:
  emulator: false
  api_version: v8
  api_url: ` + zohoURL + `
  accounts_url: ` + zohoURL + `
  client_id: ` + fsClientID + `
  client_secret: ` + fsClientSecret + `
  refresh_token: ` + fsRefreshToken + `
  max_concurrency: 10
  timeout: 2s
telemetry:
  traces: none
  metrics_addr: ""
  log_format: json
  log_level: info
` + fsRulesYAML()
}

// waitForConsumer waits until the service has created its durable consumer.
func waitForConsumer(ctx context.Context, t *testing.T, js jetstream.JetStream, proc *serviceProc) jetstream.Consumer {
	t.Helper()
	for {
		c, err := js.Consumer(ctx, "CRM_EVENTS", "crmshare")
		if err == nil {
			return c
		}
		if perr := proc.running(); perr != nil {
			t.Fatalf("waiting for the durable consumer: %v\n%s", perr, proc.tail(4000))
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the service created no durable consumer: %v (last error %v)", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// fsPublish publishes the log in order, each event under its id as
// Nats-Msg-Id, and waits for every acknowledgement.
func fsPublish(ctx context.Context, t *testing.T, js jetstream.JetStream, log *fsLog) {
	t.Helper()
	for start := 0; start < len(log.events); start += 500 {
		var acks []jetstream.PubAckFuture
		for _, ev := range log.events[start:min(start+500, len(log.events))] {
			msg := &nats.Msg{Subject: ev.subject, Header: ev.header, Data: ev.data}
			f, err := js.PublishMsgAsync(msg, jetstream.WithExpectStream("CRM_EVENTS"))
			if err != nil {
				t.Fatalf("publish %s: %v", ev.id, err)
			}
			acks = append(acks, f)
		}
		for _, f := range acks {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				t.Fatalf("publish %s: %v", f.Msg().Header.Get(nats.MsgIdHdr), err)
			case <-ctx.Done():
				t.Fatalf("publish: %v", ctx.Err())
			}
		}
	}
}

// waitSettled polls the consumer until done says so; settled counts the
// messages acked or terminated. It fails the test when the service exits on
// its own or ctx ends. Errors while the server restarts are retried.
func waitSettled(ctx context.Context, t *testing.T, cons jetstream.Consumer, proc *serviceProc, done func(settled uint64, ci *jetstream.ConsumerInfo) bool, what string) *jetstream.ConsumerInfo {
	t.Helper()
	var (
		last    *jetstream.ConsumerInfo
		lastErr error
	)
	for {
		ictx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ci, err := cons.Info(ictx)
		cancel()
		if err == nil {
			last = ci
			settled := ci.Delivered.Stream - uint64(ci.NumAckPending)
			if done(settled, ci) {
				return ci
			}
		} else {
			lastErr = err
		}
		if perr := proc.running(); perr != nil {
			t.Fatalf("waiting for %s: %v", what, perr)
		}
		select {
		case <-ctx.Done():
			if last != nil {
				t.Fatalf("waiting for %s: %v; consumer: delivered %d, ack floor %d, ack pending %d, pending %d, redelivered %d (last error %v)",
					what, ctx.Err(), last.Delivered.Stream, last.AckFloor.Stream, last.NumAckPending, last.NumPending, last.NumRedelivered, lastErr)
			}
			t.Fatalf("waiting for %s: %v (last error %v)", what, ctx.Err(), lastErr)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// fsDeadLetter is one message of the dead-letter stream.
type fsDeadLetter struct {
	ID, Reason string
}

// fsDeadLetters reads the whole dead-letter stream, in order.
func fsDeadLetters(ctx context.Context, t *testing.T, js jetstream.JetStream) []fsDeadLetter {
	t.Helper()
	st, err := js.Stream(ctx, "CRM_EVENTS_DLQ")
	if err != nil {
		t.Fatalf("dead-letter stream: %v", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatalf("dead-letter stream info: %v", err)
	}
	var out []fsDeadLetter
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("dead letter %d: %v", seq, err)
		}
		out = append(out, fsDeadLetter{ID: m.Header.Get(consumer.HeaderOriginalMsgID), Reason: m.Header.Get(consumer.HeaderError)})
	}
	return out
}

// fsShareGets counts the GET calls on the share endpoint.
func fsShareGets(st zohoemu.RequestStats) int {
	n := 0
	for route, c := range st.ByRoute {
		if strings.HasPrefix(route, "GET ") && strings.Contains(route, "/actions/share") {
			n += c
		}
	}
	return n
}

// fmtCounts prints a count map sorted by key.
func fmtCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s=%d", k, m[k])
	}
	return b.String()
}
