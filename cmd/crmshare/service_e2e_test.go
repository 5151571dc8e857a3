package main

// End-to-end acceptance of the service: the real serve path against a NATS
// server and a Zoho emulator that the test owns, so the test can publish,
// inject faults, revoke credentials and read the final state.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/crmshare/crmshare/consumer"
	"github.com/crmshare/crmshare/zoho/zohoemu"
)

// Record and user IDs of the demo org (deploy/examples/emulator-seed.json).
const (
	demoDeal     = "4150868000002515001"
	demoDeal2    = "4150868000002515002"
	demoAccount  = "4150868000000987001"
	userMaria    = "4150868000001248015"
	userKen      = "4150868000001199001"
	userSam      = "4150868000001174048"
	userLi       = "4150868000001301777"
	demoRefresh  = "1000.dev.refresh"
	accWaitLimit = 30 * time.Second
)

// accWorld is what an acceptance test runs the service against: a NATS
// server with JetStream and a Zoho emulator, both owned by the test.
type accWorld struct {
	natsURL string
	nc      *nats.Conn
	js      jetstream.JetStream
	emu     *zohoemu.Emulator
	emuURL  string
}

// newAccWorld starts a JetStream server and an emulator loaded with seed
// (nil: the demo org) and stops them when the test ends.
func newAccWorld(t testing.TB, seed *zohoemu.Seed) *accWorld {
	t.Helper()
	srv, err := consumer.StartEmbedded(consumer.EmbeddedConfig{StoreDir: t.TempDir(), Host: "127.0.0.1", Port: -1})
	if err != nil {
		t.Fatalf("start nats: %v", err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatalf("connect nats: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	if seed == nil {
		if seed, err = zohoemu.DemoSeed(); err != nil {
			t.Fatalf("demo seed: %v", err)
		}
	}
	emu, err := zohoemu.New(zohoemu.Config{Seed: seed})
	if err != nil {
		t.Fatalf("emulator: %v", err)
	}
	hs := httptest.NewServer(emu)
	t.Cleanup(hs.Close)
	return &accWorld{natsURL: srv.ClientURL(), nc: nc, js: js, emu: emu, emuURL: hs.URL}
}

// config is the dev config (its rules and settings) pointed at the world,
// with short backoffs, no fixed ports, no trace export and no dev events.
func (w *accWorld) config(t testing.TB) *Config {
	t.Helper()
	cfg, err := LoadConfigFile(devConfig, func(string) string { return "" })
	if err != nil {
		t.Fatalf("load dev config: %v", err)
	}
	cfg.NATS.URL = w.natsURL
	cfg.NATS.Consumer.Backoff = []time.Duration{100 * time.Millisecond, 200 * time.Millisecond}
	cfg.Zoho.Emulator = false
	cfg.Zoho.EmulatorSeed = ""
	cfg.Zoho.APIURL, cfg.Zoho.AccountsURL = w.emuURL, w.emuURL
	cfg.Telemetry.Traces = "none"
	cfg.Telemetry.MetricsAddr = "127.0.0.1:0"
	cfg.Telemetry.LogFormat = "json"
	cfg.Telemetry.LogLevel = "debug"
	cfg.Dev.Publish = nil
	return cfg
}

// publish publishes ev to crm.events.<type> in mode and returns the ack.
func (w *accWorld) publish(t testing.TB, ev event.Event, mode consumer.Mode) *jetstream.PubAck {
	t.Helper()
	ack, err := consumer.Publish(t.Context(), w.js, "crm.events."+ev.Type(), ev, mode)
	if err != nil {
		t.Fatalf("publish %s: %v", ev.ID(), err)
	}
	return ack
}

// publishAll publishes events in order, structured, without waiting for each
// acknowledgement, and returns the stream sequence of the last.
func (w *accWorld) publishAll(t testing.TB, events []event.Event) uint64 {
	t.Helper()
	futures := make([]jetstream.PubAckFuture, 0, len(events))
	for _, ev := range events {
		msg, err := consumer.Encode("crm.events."+ev.Type(), ev, consumer.ModeStructured)
		if err != nil {
			t.Fatal(err)
		}
		f, err := w.js.PublishMsgAsync(msg, jetstream.WithMsgID(consumer.EventKey(ev)))
		if err != nil {
			t.Fatalf("publish %s: %v", ev.ID(), err)
		}
		futures = append(futures, f)
	}
	var last uint64
	for _, f := range futures {
		select {
		case ack := <-f.Ok():
			last = max(last, ack.Sequence)
		case err := <-f.Err():
			t.Fatalf("publish: %v", err)
		case <-t.Context().Done():
			t.Fatal(t.Context().Err())
		}
	}
	return last
}

// waitSettled waits until the durable consumer has delivered every message of
// the stream up to seq and none is waiting for an ack.
func (w *accWorld) waitSettled(t testing.TB, stream, durable string, seq uint64) {
	t.Helper()
	accEventually(t, accWaitLimit, func() (bool, string) {
		info, err := w.js.Consumer(t.Context(), stream, durable)
		if err != nil {
			return false, err.Error()
		}
		ci, err := info.Info(t.Context())
		if err != nil {
			return false, err.Error()
		}
		return ci.AckFloor.Stream >= seq && ci.NumAckPending == 0,
			fmt.Sprintf("ack floor %d (want %d), ack pending %d, redelivered %d", ci.AckFloor.Stream, seq, ci.NumAckPending, ci.NumRedelivered)
	})
}

// deadLetters returns every message of the dead-letter stream.
func (w *accWorld) deadLetters(t testing.TB, stream string) []*jetstream.RawStreamMsg {
	t.Helper()
	st, err := w.js.Stream(t.Context(), stream)
	if err != nil {
		t.Fatalf("dead-letter stream: %v", err)
	}
	info, err := st.Info(t.Context())
	if err != nil {
		t.Fatalf("dead-letter stream info: %v", err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(t.Context(), seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("dead letter %d: %v", seq, err)
		}
		out = append(out, m)
	}
	return out
}

// accEventually polls cond until it holds or limit passes; the string says
// what was last seen, for the failure message.
func accEventually(t testing.TB, limit time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, seen := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", limit, seen)
		}
		<-tick.C
	}
}

// accLog collects the service's JSON log lines so tests can wait for one.
type accLog struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	lines []map[string]any
	raw   []string
}

// Write splits p into lines and decodes each as a JSON object.
func (l *accLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	for {
		line, err := l.buf.ReadBytes('\n')
		if err != nil {
			l.buf.Write(line) // incomplete: keep for the next write
			break
		}
		l.raw = append(l.raw, string(line))
		var m map[string]any
		if json.Unmarshal(line, &m) == nil {
			l.lines = append(l.lines, m)
		}
	}
	return len(p), nil
}

// find returns the lines whose msg is msg and whose attributes include attrs.
func (l *accLog) find(msg string, attrs map[string]string) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, m := range l.lines {
		if m["msg"] != msg {
			continue
		}
		ok := true
		for k, v := range attrs {
			if fmt.Sprint(m[k]) != v {
				ok = false
			}
		}
		if ok {
			out = append(out, m)
		}
	}
	return out
}

// text returns the whole log, for failure messages.
func (l *accLog) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.raw, "")
}

// accService is one serve call running in the background.
type accService struct {
	log     *accLog
	stdout  *accLog
	cancel  context.CancelFunc
	done    chan error
	metrics string // the /metrics, /healthz, /readyz address
	stopped bool
	err     error
}

// startAcc runs serve with cfg until the test ends or stop is called, and
// waits until it logged that it started.
func startAcc(t testing.TB, cfg *Config, opts serviceOptions) *accService {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	s := &accService{log: &accLog{}, stdout: &accLog{}, cancel: cancel, done: make(chan error, 1)}
	opts.LogWriter = s.log
	if opts.TraceWriter == nil {
		opts.TraceWriter = s.stdout
	}
	sio := stdio{stdin: strings.NewReader(""), stdout: s.stdout, stderr: s.log, getenv: func(string) string { return "" }}
	go func() { s.done <- serve(ctx, cfg, sio, opts) }()
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	deadline := time.After(accWaitLimit)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if started := s.log.find("crmshare started", nil); len(started) > 0 {
			s.metrics, _ = started[0]["metrics"].(string)
			return s
		}
		select {
		case err := <-s.done:
			s.stopped, s.err = true, err
			t.Fatalf("serve returned before starting: %v\n%s", err, s.log.text())
		case <-deadline:
			t.Fatalf("service did not start within %v\n%s", accWaitLimit, s.log.text())
		case <-tick.C:
		}
	}
}

// stop cancels serve's context, as SIGTERM does, and returns its result.
func (s *accService) stop() error {
	if s.stopped {
		return s.err
	}
	s.cancel()
	select {
	case s.err = <-s.done:
	case <-time.After(time.Minute):
		s.err = errors.New("serve did not return within a minute of its context ending")
	}
	s.stopped = true
	return s.err
}

// readyz returns the status of GET /readyz.
func (s *accService) readyz(t testing.TB) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+s.metrics+"/readyz", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// metricValue sums the samples of a Prometheus counter whose label set
// includes labels.
func (s *accService) metricValue(t testing.TB, name string, labels map[string]string) float64 {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+s.metrics+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for k, v := range labels {
			if !strings.Contains(line, k+`="`+v+`"`) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += f
	}
	return sum
}

// exampleEvent reads one of deploy/examples/events.
func exampleEvent(t testing.TB, name string) event.Event {
	t.Helper()
	ev, err := readEventFile(exampleEvents+"/"+name, nil)
	if err != nil {
		t.Fatalf("example event: %v", err)
	}
	return ev
}

// newEvent builds a CloudEvent with JSON data.
func newEvent(t testing.TB, id, typ, source, subject string, data any) event.Event {
	t.Helper()
	ev := event.New()
	ev.SetID(id)
	ev.SetType(typ)
	ev.SetSource(source)
	ev.SetSubject(subject)
	ev.SetTime(time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC))
	if err := ev.SetData(event.ApplicationJSON, data); err != nil {
		t.Fatalf("event data: %v", err)
	}
	return ev
}

func userShare(id, perm string, related bool) zohoemu.Entry {
	return zohoemu.Entry{Type: "users", ID: id, Permission: perm, ShareRelated: related}
}

// waitShares waits until the record's direct shares are want.
func (w *accWorld) waitShares(t testing.TB, module, id string, want []zohoemu.Entry) {
	t.Helper()
	accEventually(t, accWaitLimit, func() (bool, string) {
		got := w.emu.Shares(module, id)
		d := cmp.Diff(got, want)
		return d == "", fmt.Sprintf("%s/%s shares (-got +want):\n%s", module, id, d)
	})
}

// TestServiceExampleEvents carries out the four example events one after
// another, with email recipients, and checks the emulator after each.
func TestServiceExampleEvents(t *testing.T) {
	w := newAccWorld(t, nil)
	cfg := w.config(t)
	svc := startAcc(t, cfg, serviceOptions{})
	untouched := w.emu.Shares("Deals", demoDeal2)

	steps := []struct {
		event  string
		module string
		record string
		want   []zohoemu.Entry
	}{
		{"deal.assigned.json", "Deals", demoDeal, []zohoemu.Entry{
			userShare(userKen, "read_only", false), // by user id and by email: one share
			userShare(userMaria, "read_write", true),
		}},
		{"deal.reassigned.json", "Deals", demoDeal, []zohoemu.Entry{
			userShare(userSam, "read_write", true),
			userShare(userKen, "read_only", false),
		}},
		{"account.team.changed.json", "Accounts", demoAccount, []zohoemu.Entry{
			userShare(userKen, "read_only", false),
			userShare(userMaria, "full_access", false),
			userShare(userLi, "read_only", false),
		}},
		{"deal.closed.json", "Deals", demoDeal, nil},
	}
	for _, st := range steps {
		t.Run(st.event, func(t *testing.T) {
			ack := w.publish(t, exampleEvent(t, st.event), consumer.ModeStructured)
			w.waitSettled(t, cfg.NATS.Stream.Name, cfg.NATS.Consumer.Durable, ack.Sequence)
			sortEntries(st.want)
			if diff := cmp.Diff(w.emu.Shares(st.module, st.record), st.want); diff != "" {
				t.Errorf("%s/%s shares (-got +want):\n%s", st.module, st.record, diff)
			}
		})
	}
	if diff := cmp.Diff(w.emu.Shares("Deals", demoDeal2), untouched); diff != "" {
		t.Errorf("a record no event names changed (-got +want):\n%s", diff)
	}
	if dl := w.deadLetters(t, cfg.NATS.DeadLetter.Stream); len(dl) != 0 {
		t.Errorf("%d dead letters, want none", len(dl))
	}
	if got := svc.metricValue(t, "crmshare_events_total", map[string]string{"decision": "ack"}); got != 4 {
		t.Errorf("crmshare_events_total{decision=ack} = %v, want 4", got)
	}
}

// sortEntries sorts as the emulator's Shares does: by type, then ID.
func sortEntries(es []zohoemu.Entry) {
	slices.SortFunc(es, func(a, b zohoemu.Entry) int {
		if c := strings.Compare(a.Type, b.Type); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

// dlqWant is what a dead letter must carry.
type dlqWant struct {
	subject  string // the original subject
	body     []byte // the original body
	rule     string // Crmshare-Rule, "" for none
	zohoCode string // Crmshare-Zoho-Code, "" for none
	errWord  string // a word Crmshare-Error starts with (its reason class)
	delivers string // Crmshare-Deliveries
}

// checkDeadLetter compares a dead letter with want.
func checkDeadLetter(t *testing.T, prefix string, got *jetstream.RawStreamMsg, seq uint64, want dlqWant) {
	t.Helper()
	if got.Subject != prefix+"."+want.subject {
		t.Errorf("subject = %q, want %q", got.Subject, prefix+"."+want.subject)
	}
	if !bytes.Equal(got.Data, want.body) {
		t.Errorf("body changed:\n got %q\nwant %q", got.Data, want.body)
	}
	h := got.Header
	if e := h.Get(consumer.HeaderError); !strings.HasPrefix(e, want.errWord) {
		t.Errorf("%s = %q, want it to start with %q", consumer.HeaderError, e, want.errWord)
	}
	for _, c := range []struct{ key, want string }{
		{consumer.HeaderRule, want.rule},
		{consumer.HeaderZohoCode, want.zohoCode},
		{consumer.HeaderOriginalSubject, want.subject},
		{consumer.HeaderOriginalSequence, strconv.FormatUint(seq, 10)},
		{consumer.HeaderDeliveries, want.delivers},
	} {
		if got := h.Get(c.key); got != c.want {
			t.Errorf("%s = %q, want %q", c.key, got, c.want)
		}
	}
	if _, err := time.Parse(time.RFC3339, h.Get(consumer.HeaderFailedAt)); err != nil {
		t.Errorf("%s = %q: %v", consumer.HeaderFailedAt, h.Get(consumer.HeaderFailedAt), err)
	}
}

// TestServiceFailures: an unmatched event is acked and counted; a malformed
// event, a rule error and a permanent Zoho refusal are dead-lettered with
// their reason; a transient Zoho error is retried with the configured
// backoff; one that never heals is dead-lettered after max_deliver. The dead
// letters go to a configured stream and subject.
func TestServiceFailures(t *testing.T) {
	w := newAccWorld(t, nil)
	cfg := w.config(t)
	cfg.NATS.DeadLetter = DeadLetterConfig{Stream: "OPS_DEAD", Subject: "ops.dead"}
	cfg.NATS.Consumer.MaxDeliver = 3
	svc := startAcc(t, cfg, serviceOptions{})
	stream, durable := cfg.NATS.Stream.Name, cfg.NATS.Consumer.Durable
	assigned := func(id, deal string) event.Event {
		return newEvent(t, id, "deal.assigned", "urn:acme:routing", "Deals/"+deal, map[string]any{
			"deal_id": deal, "amount": 10, "assignee": map[string]any{"zoho_user_id": userLi}, "watchers": []string{},
		})
	}

	t.Run("unmatched event is acked and counted", func(t *testing.T) {
		before := w.emu.Requests().Total
		ev := newEvent(t, "unmatched-1", "deal.updated", "urn:acme:routing", "Deals/"+demoDeal, map[string]any{"deal_id": demoDeal})
		ack := w.publish(t, ev, consumer.ModeStructured)
		w.waitSettled(t, stream, durable, ack.Sequence)
		if got := svc.metricValue(t, "crmshare_events_total", map[string]string{"type": "deal.updated", "decision": "ack"}); got != 1 {
			t.Errorf("crmshare_events_total{type=deal.updated,decision=ack} = %v, want 1", got)
		}
		if got := w.emu.Requests().Total; got != before {
			t.Errorf("emulator requests = %d, want %d: an unmatched event calls Zoho", got, before)
		}
	})

	type dlCase struct {
		name    string
		publish func(t *testing.T) (seq uint64, body []byte)
		want    dlqWant
	}
	var cases []dlCase
	cases = append(cases, dlCase{
		name: "malformed event",
		publish: func(t *testing.T) (uint64, []byte) {
			body := []byte(`{"specversion":"1.0","id":"broken-1","type":`)
			msg := nats.NewMsg("crm.events.deal.assigned")
			msg.Header.Set("content-type", "application/cloudevents+json")
			msg.Data = body
			ack, err := w.js.PublishMsg(t.Context(), msg)
			if err != nil {
				t.Fatal(err)
			}
			return ack.Sequence, body
		},
		// The consumer names the failure class where a Zoho code would go.
		want: dlqWant{subject: "crm.events.deal.assigned", zohoCode: "", errWord: "undecodable", delivers: "1"},
	}, dlCase{
		name: "rule error",
		publish: func(t *testing.T) (uint64, []byte) {
			ev := newEvent(t, "closed-no-deal", "deal.closed", "urn:acme:billing", "Deals/x", map[string]any{"outcome": "won"})
			ack := w.publish(t, ev, consumer.ModeStructured)
			return ack.Sequence, mustStructured(t, ev)
		},
		want: dlqWant{subject: "crm.events.deal.closed", rule: "closed-deals-are-private-again", errWord: "permanent", delivers: "1"},
	}, dlCase{
		name: "permanent zoho error",
		publish: func(t *testing.T) (uint64, []byte) {
			ev := assigned("no-such-deal", "4150868000009999999")
			ack := w.publish(t, ev, consumer.ModeStructured)
			return ack.Sequence, mustStructured(t, ev)
		},
		want: dlqWant{subject: "crm.events.deal.assigned", rule: "share-deal-with-assignee", zohoCode: "INVALID_DATA", errWord: "permanent", delivers: "1"},
	}, dlCase{
		name: "transient zoho error that never heals",
		publish: func(t *testing.T) (uint64, []byte) {
			w.emu.SetFaults(zohoemu.Faults{Rules: []zohoemu.Fault{{Code: "INTERNAL_ERROR", Count: 1000, Methods: []string{"POST"}, Paths: []string{"/actions/share"}}}})
			t.Cleanup(func() { w.emu.SetFaults(zohoemu.Faults{}) })
			ev := assigned("never-heals", demoDeal2)
			ack := w.publish(t, ev, consumer.ModeStructured)
			return ack.Sequence, mustStructured(t, ev)
		},
		want: dlqWant{subject: "crm.events.deal.assigned", rule: "share-deal-with-assignee", zohoCode: "INTERNAL_ERROR", errWord: "retries exhausted", delivers: "3"},
	})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(w.deadLetters(t, "OPS_DEAD"))
			seq, body := tc.publish(t)
			w.waitSettled(t, stream, durable, seq)
			dl := w.deadLetters(t, "OPS_DEAD")
			if len(dl) != before+1 {
				t.Fatalf("%d dead letters, want %d", len(dl), before+1)
			}
			want := tc.want
			want.body = body
			checkDeadLetter(t, "ops.dead", dl[len(dl)-1], seq, want)
		})
	}

	t.Run("transient zoho error is retried with the backoff and heals", func(t *testing.T) {
		w.emu.SetFaults(zohoemu.Faults{Rules: []zohoemu.Fault{{Code: "INTERNAL_ERROR", Count: 2, Methods: []string{"POST"}, Paths: []string{"/actions/share"}}}})
		t.Cleanup(func() { w.emu.SetFaults(zohoemu.Faults{}) })
		w.emu.ResetRequests()
		before := len(w.deadLetters(t, "OPS_DEAD"))
		ack := w.publish(t, assigned("heals", demoDeal), consumer.ModeBinary)
		w.waitSettled(t, stream, durable, ack.Sequence)
		w.waitShares(t, "Deals", demoDeal, []zohoemu.Entry{userShare(userLi, "read_write", true)})
		if got := len(w.deadLetters(t, "OPS_DEAD")); got != before {
			t.Errorf("%d dead letters, want %d", got, before)
		}
		var posts []zohoemu.RequestLog
		for _, r := range w.emu.Requests().Recent {
			if r.Method == http.MethodPost && strings.HasSuffix(r.Path, "/actions/share") {
				posts = append(posts, r)
			}
		}
		var statuses []int
		for _, p := range posts {
			statuses = append(statuses, p.Status)
		}
		if diff := cmp.Diff(statuses, []int{500, 500, 201}); diff != "" {
			t.Fatalf("share POST statuses (-got +want):\n%s", diff)
		}
		// Each retry waits at least the configured nak delay for its delivery.
		for i, min := range cfg.NATS.Consumer.Backoff {
			if gap := posts[i+1].Time.Sub(posts[i].Time); gap < min {
				t.Errorf("retry %d came %v after the failure, want at least the backoff %v", i+1, gap, min)
			}
		}
	})
}

// mustStructured is the body Publish sends for ev in structured mode.
func mustStructured(t testing.TB, ev event.Event) []byte {
	t.Helper()
	msg, err := consumer.Encode("x", ev, consumer.ModeStructured)
	if err != nil {
		t.Fatal(err)
	}
	return msg.Data
}

// TestServiceCredentialsRejected: when Zoho rejects the credentials nothing
// is dead-lettered and /readyz fails; once the credentials are accepted
// again every event is applied.
func TestServiceCredentialsRejected(t *testing.T) {
	w := newAccWorld(t, nil)
	cfg := w.config(t)
	svc := startAcc(t, cfg, serviceOptions{Consumer: func(c *consumer.Config) {
		c.ProbeInterval, c.MaxProbeInterval = 50*time.Millisecond, 200*time.Millisecond
	}})
	stream, durable := cfg.NATS.Stream.Name, cfg.NATS.Consumer.Durable
	accEventually(t, accWaitLimit, func() (bool, string) {
		got := svc.readyz(t)
		return got == http.StatusOK, fmt.Sprintf("/readyz %d before any event", got)
	})
	ack := w.publish(t, exampleEvent(t, "deal.assigned.json"), consumer.ModeStructured)
	w.waitSettled(t, stream, durable, ack.Sequence)

	w.emu.RevokeRefreshToken(demoRefresh)
	w.publish(t, exampleEvent(t, "deal.reassigned.json"), consumer.ModeStructured)
	last := w.publish(t, exampleEvent(t, "account.team.changed.json"), consumer.ModeStructured)
	accEventually(t, accWaitLimit, func() (bool, string) {
		got := svc.readyz(t)
		return got == http.StatusServiceUnavailable, fmt.Sprintf("/readyz %d while the credentials are rejected", got)
	})
	// /readyz may fail on the zoho check before the consumer has logged its
	// suspension: wait for the line rather than read it once.
	accEventually(t, accWaitLimit, func() (bool, string) {
		return len(svc.log.find("consumption suspended: probing before resuming", nil)) > 0,
			"no suspension logged:\n" + svc.log.text()
	})
	if dl := w.deadLetters(t, cfg.NATS.DeadLetter.Stream); len(dl) != 0 {
		t.Fatalf("%d dead letters while the credentials are rejected, want none", len(dl))
	}

	seed, err := zohoemu.DemoSeed()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.emu.LoadSeed(&zohoemu.Seed{Clients: seed.Clients}); err != nil {
		t.Fatal(err)
	}
	w.waitResumed(t, svc, cfg, last.Sequence, "after the credentials are accepted again")
}

// waitResumed waits, after a suspension, for the first three example events
// (deal.assigned, deal.reassigned, account.team.changed; the last at
// lastSeq) to be settled and their shares in place, and for /readyz to pass,
// with no dead letter.
func (w *accWorld) waitResumed(t *testing.T, svc *accService, cfg *Config, lastSeq uint64, when string) {
	t.Helper()
	w.waitSettled(t, cfg.NATS.Stream.Name, cfg.NATS.Consumer.Durable, lastSeq)
	w.waitShares(t, "Deals", demoDeal, []zohoemu.Entry{userShare(userSam, "read_write", true), userShare(userKen, "read_only", false)})
	want := []zohoemu.Entry{userShare(userKen, "read_only", false), userShare(userMaria, "full_access", false), userShare(userLi, "read_only", false)}
	sortEntries(want)
	w.waitShares(t, "Accounts", demoAccount, want)
	accEventually(t, accWaitLimit, func() (bool, string) {
		got := svc.readyz(t)
		return got == http.StatusOK, fmt.Sprintf("/readyz %d %s", got, when)
	})
	if dl := w.deadLetters(t, cfg.NATS.DeadLetter.Stream); len(dl) != 0 {
		t.Errorf("%d dead letters, want none", len(dl))
	}
}

// TestServiceCreditsRunOut: the org's API credits for the day run out in the
// middle of the backlog. Consumption pauses and /readyz fails instead of each
// event spending its deliveries on 429s until it is dead-lettered; once the
// org has credits again every event is applied, none dead-lettered.
func TestServiceCreditsRunOut(t *testing.T) {
	seed, err := zohoemu.DemoSeed()
	if err != nil {
		t.Fatal(err)
	}
	org := *seed.Org
	org.DailyCredits = 3 // enough for the first event, not for the rest
	seed.Org = &org
	w := newAccWorld(t, seed)
	cfg := w.config(t)
	svc := startAcc(t, cfg, serviceOptions{Consumer: func(c *consumer.Config) {
		c.ProbeInterval, c.MaxProbeInterval = 50*time.Millisecond, 200*time.Millisecond
	}})
	stream, durable := cfg.NATS.Stream.Name, cfg.NATS.Consumer.Durable

	var last *jetstream.PubAck
	for _, name := range []string{"deal.assigned.json", "deal.reassigned.json", "account.team.changed.json"} {
		last = w.publish(t, exampleEvent(t, name), consumer.ModeStructured)
	}
	accEventually(t, accWaitLimit, func() (bool, string) {
		return len(svc.log.find("consumption suspended: probing before resuming", nil)) > 0,
			"no suspension logged:\n" + svc.log.text()
	})
	accEventually(t, accWaitLimit, func() (bool, string) {
		got := svc.readyz(t)
		return got == http.StatusServiceUnavailable, fmt.Sprintf("/readyz %d while the credits are used up", got)
	})
	if n := w.emu.Requests().TooManyRequests; n == 0 {
		t.Fatal("no 429 from the emulator; the credits did not run out and the test proves nothing")
	}
	if dl := w.deadLetters(t, cfg.NATS.DeadLetter.Stream); len(dl) != 0 {
		t.Fatalf("%d dead letters while the credits are used up, want none", len(dl))
	}
	// Suspended, the service waits: the events are neither applied nor
	// dead-lettered however long the credits stay used up.
	info, err := w.js.Consumer(t.Context(), stream, durable)
	if err != nil {
		t.Fatal(err)
	}
	if ci, err := info.Info(t.Context()); err != nil {
		t.Fatal(err)
	} else if ci.AckFloor.Stream >= last.Sequence {
		t.Fatalf("ack floor %d reached the last event %d with no credits", ci.AckFloor.Stream, last.Sequence)
	}

	// The day turns: the org has credits again.
	org.DailyCredits = 0
	if err := w.emu.LoadSeed(&zohoemu.Seed{Org: &org}); err != nil {
		t.Fatal(err)
	}
	w.waitResumed(t, svc, cfg, last.Sequence, "after the credits came back")
	if len(svc.log.find("consumption resumed", nil)) == 0 {
		t.Errorf("no resumption logged:\n%s", svc.log.text())
	}
}

// TestServiceModesDuplicatesAndReplay: both content modes are applied; a
// duplicate publish within the window is stored once; the same event
// published later under a new message id makes no Zoho call.
func TestServiceModesDuplicatesAndReplay(t *testing.T) {
	w := newAccWorld(t, nil)
	cfg := w.config(t)
	svc := startAcc(t, cfg, serviceOptions{})
	stream, durable := cfg.NATS.Stream.Name, cfg.NATS.Consumer.Durable

	for _, tc := range []struct {
		mode consumer.Mode
		user string
	}{
		{consumer.ModeStructured, userSam},
		{consumer.ModeBinary, userLi},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			ev := newEvent(t, "mode-"+tc.mode.String(), "deal.assigned", "urn:acme:routing", "Deals/"+demoDeal, map[string]any{
				"deal_id": demoDeal, "amount": 5, "assignee": map[string]any{"zoho_user_id": tc.user}, "watchers": []string{},
			})
			ack := w.publish(t, ev, tc.mode)
			w.waitSettled(t, stream, durable, ack.Sequence)
			if !slices.Contains(w.emu.Shares("Deals", demoDeal), userShare(tc.user, "read_write", true)) {
				t.Errorf("%s-mode event not applied: shares %v", tc.mode, w.emu.Shares("Deals", demoDeal))
			}
		})
	}

	t.Run("duplicate within the window", func(t *testing.T) {
		ev := exampleEvent(t, "account.team.changed.json")
		first := w.publish(t, ev, consumer.ModeStructured)
		second := w.publish(t, ev, consumer.ModeBinary)
		if !second.Duplicate || second.Sequence != first.Sequence {
			t.Errorf("second publish: duplicate %v sequence %d, want a duplicate of %d", second.Duplicate, second.Sequence, first.Sequence)
		}
		w.waitSettled(t, stream, durable, first.Sequence)
		if got := w.emu.Requests().ByMethod[http.MethodPut]; got != 1 {
			t.Errorf("share PUT calls = %d, want 1", got)
		}
	})

	t.Run("replay under a new message id", func(t *testing.T) {
		ev := exampleEvent(t, "account.team.changed.json")
		before := w.emu.Requests()
		hitsBefore := svc.metricValue(t, "crmshare_ledger_hits_total", nil)
		msg, err := consumer.Encode("crm.events."+ev.Type(), ev, consumer.ModeStructured)
		if err != nil {
			t.Fatal(err)
		}
		ack, err := w.js.PublishMsg(t.Context(), msg, jetstream.WithMsgID("replay-"+ev.ID()))
		if err != nil {
			t.Fatal(err)
		}
		if ack.Duplicate {
			t.Fatal("replay was dropped as a duplicate: the test would prove nothing")
		}
		w.waitSettled(t, stream, durable, ack.Sequence)
		after := w.emu.Requests()
		if after.Total != before.Total || !maps.Equal(after.ByRoute, before.ByRoute) {
			t.Errorf("replay called Zoho: requests %d -> %d", before.Total, after.Total)
		}
		if got := svc.metricValue(t, "crmshare_ledger_hits_total", nil); got != hitsBefore+1 {
			t.Errorf("ledger hits = %v, want %v", got, hitsBefore+1)
		}
	})
}

// orderingSeed is the demo org plus records R0..R(n-1) and the pool of users
// the ordering test assigns.
func orderingSeed(t testing.TB, records int) (*zohoemu.Seed, []string, []string) {
	t.Helper()
	seed, err := zohoemu.DemoSeed()
	if err != nil {
		t.Fatal(err)
	}
	seed.Org.ConcurrencyLimit, seed.Org.DailyCredits = 0, 0
	pool := []string{userMaria, userKen, userSam, userLi}
	for i := range 2 {
		id := fmt.Sprintf("41508680000014%05d", i)
		seed.Users = append(seed.Users, zohoemu.User{ID: id, Email: fmt.Sprintf("rep%d@acme.example", i), FullName: fmt.Sprintf("Rep %d", i), Status: "active", Confirm: true})
		pool = append(pool, id)
	}
	var ids []string
	for i := range records {
		id := fmt.Sprintf("41508680000030%05d", i)
		seed.Records = append(seed.Records, zohoemu.Record{Module: "Deals", ID: id, Name: "Deal " + id, Owner: seed.Clients[0].UserID})
		ids = append(ids, id)
	}
	return seed, ids, pool
}

// TestServiceKeepsRecordOrder publishes 1,000 alternating assign and
// reassign events over 20 records and checks that, with 16 events at once,
// every record ends in the state that applying its events in stream order
// gives. Run it with -count=5: the interleaving differs each time.
func TestServiceKeepsRecordOrder(t *testing.T) {
	const records, perRecord = 20, 50
	seed, ids, pool := orderingSeed(t, records)
	w := newAccWorld(t, seed)
	cfg := w.config(t)
	cfg.NATS.Concurrency = 16
	cfg.Telemetry.LogLevel = "info"
	startAcc(t, cfg, serviceOptions{})

	// Each record's events: even ones assign a user (the previous assignee
	// keeps access), odd ones reassign from the last assignee to a new one.
	// The model applies them in order.
	rng := rand.New(rand.NewPCG(1, 2))
	type pending struct{ events []event.Event }
	queues := make([]pending, records)
	want := make(map[string][]zohoemu.Entry, records)
	for r, id := range ids {
		shared := map[string]bool{}
		last := ""
		for i := range perRecord {
			user := pool[rng.IntN(len(pool))]
			eid := fmt.Sprintf("order-%d-%d", r, i)
			data := map[string]any{"deal_id": id, "assignee": map[string]any{"zoho_user_id": user}}
			typ := "deal.assigned"
			if i%2 == 0 {
				data["amount"], data["watchers"] = 1, []string{}
			} else {
				typ = "deal.reassigned"
				data["previous_assignee"] = map[string]any{"zoho_user_id": last}
				delete(shared, last)
			}
			shared[user] = true
			last = user
			queues[r].events = append(queues[r].events, newEvent(t, eid, typ, "urn:acme:routing", "Deals/"+id, data))
		}
		var es []zohoemu.Entry
		for u := range shared {
			es = append(es, userShare(u, "read_write", true))
		}
		sortEntries(es)
		want[id] = es
	}
	// Interleave the records at random, each record's events in order.
	var stream []event.Event
	for left := records * perRecord; left > 0; left-- {
		r := rng.IntN(records)
		for len(queues[r].events) == 0 {
			r = (r + 1) % records
		}
		stream = append(stream, queues[r].events[0])
		queues[r].events = queues[r].events[1:]
	}
	last := w.publishAll(t, stream)
	w.waitSettled(t, cfg.NATS.Stream.Name, cfg.NATS.Consumer.Durable, last)
	got := make(map[string][]zohoemu.Entry, records)
	for _, id := range ids {
		got[id] = w.emu.Shares("Deals", id)
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("final shares differ from stream order (-got +want):\n%s", diff)
	}
	if dl := w.deadLetters(t, cfg.NATS.DeadLetter.Stream); len(dl) != 0 {
		t.Errorf("%d dead letters, want none; first: %s", len(dl), dl[0].Header.Get(consumer.HeaderError))
	}
}

// TestServiceDevConfig runs the README's first command in-process: the dev
// config as shipped (embedded NATS, in-process emulator, the example events
// published at start), with its fixed ports replaced by free ones, and checks
// the emulator ends in the state the four example events describe.
func TestServiceDevConfig(t *testing.T) {
	cfg, err := LoadConfigFile(devConfig, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	cfg.NATS.EmbeddedAddr = "127.0.0.1:0"
	cfg.Zoho.EmulatorAddr = "127.0.0.1:0"
	cfg.Telemetry.MetricsAddr = "127.0.0.1:0"
	cfg.Telemetry.LogFormat = "json" // the test reads the log
	// Paths in the dev config are relative to the repository root.
	cfg.Zoho.EmulatorSeed = "../../" + cfg.Zoho.EmulatorSeed
	for i, p := range cfg.Dev.Publish {
		cfg.Dev.Publish[i] = "../../" + p
	}
	svc := startAcc(t, cfg, serviceOptions{})
	started := svc.log.find("zoho emulator started", nil)
	if len(started) == 0 {
		t.Fatalf("no emulator URL in the log:\n%s", svc.log.text())
	}
	emuURL, _ := started[0]["url"].(string)

	accEventually(t, accWaitLimit, func() (bool, string) {
		n := len(svc.log.find("event settled", map[string]string{"decision": "ack"}))
		return n == 4, fmt.Sprintf("%d of the 4 example events acked", n)
	})
	var state zohoemu.State
	getJSON(t, emuURL+"/_emu/state", &state)
	got := map[string][]zohoemu.Entry{}
	for _, r := range state.Records {
		got[r.Module+"/"+r.ID] = r.Shares
	}
	want := map[string][]zohoemu.Entry{
		"Deals/" + demoDeal:            {}, // assigned, reassigned, then closed: private again
		"Deals/" + demoDeal2:           {userShare(userKen, "read_only", false)},
		"Accounts/" + demoAccount:      {userShare(userKen, "read_only", false), userShare(userMaria, "full_access", false), userShare(userLi, "read_only", false)},
		"Contacts/4150868000001176057": {},
	}
	sortEntries(want["Accounts/"+demoAccount])
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("emulator state after the example events (-got +want):\n%s", diff)
	}
	var reqs zohoemu.RequestStats
	getJSON(t, emuURL+"/_emu/requests", &reqs)
	for _, route := range []string{
		"POST /crm/v8/{module}/{record_id}/actions/share 201",   // deal.assigned
		"PUT /crm/v8/{module}/{record_id}/actions/share 201",    // deal.reassigned, account.team.changed
		"DELETE /crm/v8/{module}/{record_id}/actions/share 200", // deal.closed
	} {
		if reqs.ByRoute[route] == 0 {
			t.Errorf("no %q call; routes: %v", route, reqs.ByRoute)
		}
	}
	if n := len(svc.log.find("event settled", map[string]string{"decision": "dead_letter"})); n != 0 {
		t.Errorf("%d example events dead-lettered", n)
	}
	if err := svc.stop(); err != nil { // flushes the spans
		t.Fatalf("serve: %v", err)
	}
	if !strings.Contains(svc.stdout.text(), `"process crm.events.deal.assigned"`) {
		t.Error("no process span on stdout (telemetry.traces: stdout)")
	}
	// store_dir "" is a temporary store, gone once the service stopped.
	nats := svc.log.find("embedded nats started", nil)
	if len(nats) == 0 {
		t.Fatal("embedded nats start not logged")
	}
	store, _ := nats[0]["store_dir"].(string)
	if _, err := os.Stat(store); store == "" || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("temporary store %q still there after stop (stat: %v)", store, err)
	}
}

// getJSON decodes the JSON reply of GET url into v.
func getJSON(t testing.TB, url string, v any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}
