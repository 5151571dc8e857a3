package main

// End-to-end helpers: they start the real service (serve, the same path as
// `crmshare run`) with an embedded JetStream server and the in-process Zoho
// emulator, both on loopback with free ports, and give tests a way to publish
// events, reach the emulator, scrape /metrics and poll until something holds.
//
//	s := startE2E(t, e2eOptions{Rules: e2eRules})
//	ack := s.publish(t, e2eEvent("ev-1", "deal.assigned", map[string]any{"deal_id": e2eDeal, "user_id": e2eMaria}))
//	s.waitSettled(t, ack.Sequence)
//	if got := s.emu.Shares("Deals", e2eDeal); … {}

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/crmshare/crmshare/consumer"
	"github.com/crmshare/crmshare/zoho/zohoemu"
)

// IDs from the emulator's demo org (zohoemu.DemoSeed), which e2e services use
// unless a test brings its own seed.
const (
	e2eDeal        = "4150868000002515001" // Deals, no direct shares
	e2eDeal2       = "4150868000002515002" // Deals, shared with ken read_only
	e2eIntegration = "4150868000000225013" // the API user, owner of the deals
	e2eMaria       = "4150868000001248015"
	e2eKen         = "4150868000001199001"
	e2eSam         = "4150868000001174048"
	e2eMissingDeal = "4150868000002599999" // no such record: Zoho refuses
)

// e2eClientID is the OAuth client e2e services use; the secret and refresh
// token are random per service (see e2eService.clientSecret).
const e2eClientID = "1000.E2ECLIENT"

// e2eRules is a small rule set for end-to-end tests: deal.assigned grants
// data.user_id read_write on Deals/data.deal_id, deal.unassigned revokes it,
// and deal.closed revokes every direct share.
const e2eRules = `
- name: grant-deal
  on: {type: deal.assigned}
  action: grant
  module: Deals
  record_id: data.deal_id
  recipients:
    - user: data.user_id
      permission: read_write
- name: revoke-deal
  on: {type: deal.unassigned}
  action: revoke
  module: Deals
  record_id: data.deal_id
  recipients:
    - user: data.user_id
- name: close-deal
  on: {type: deal.closed}
  action: revoke_all
  module: Deals
  record_id: data.deal_id
`

// e2eOptions say how startE2E builds the service. Every zero value is a
// default that suits a quick test.
type e2eOptions struct {
	// Rules is the YAML list under rules:. Default e2eRules.
	Rules string
	// Seed is the emulator's org. Default: the demo org. Its first client's
	// credentials are replaced by e2eClientID and per-service random ones.
	Seed *zohoemu.Seed
	// Traces is telemetry.traces. Default "none".
	Traces string
	// LogLevel is telemetry.log_level. Default "debug".
	LogLevel string
	// MaxDeliver is nats.consumer.max_deliver. Default 3.
	MaxDeliver int
	// Concurrency is nats.concurrency. Default 4.
	Concurrency int
	// SpanProcessors and Readers are passed on to serviceOptions; with
	// RecordSpans a SpanRecorder is added to them as e2eService.spans.
	SpanProcessors []sdktrace.SpanProcessor
	Readers        []sdkmetric.Reader
	RecordSpans    bool
	// Mutate adjusts the loaded config before the service starts.
	Mutate func(*Config)
	// Consumer adjusts the consumer's config (after the e2e defaults: quick
	// probes and a short shutdown grace).
	Consumer func(*consumer.Config)
}

// e2eService is a running service and the test's handles on it.
type e2eService struct {
	svc *service
	cfg *Config

	emu         *zohoemu.Emulator   // the service's in-process emulator
	natsURL     string              // the embedded server's client URL
	nc          *nats.Conn          // the test's own connection (an upstream publisher)
	js          jetstream.JetStream // on nc
	metricsAddr string              // host:port of /metrics, /healthz, /readyz

	logs   *syncBuffer             // every log line the service wrote
	traces *syncBuffer             // the stdout trace exporter's output (traces: stdout)
	spans  *tracetest.SpanRecorder // nil unless RecordSpans

	clientSecret, refreshToken string // the OAuth secrets this service was given

	// stop shuts the service down (as SIGTERM would: drain, flush telemetry,
	// close) and waits for serve to return; cleanup calls it too, and later
	// calls do nothing. Tests call it to read what only shutdown flushes,
	// such as batched trace output.
	stop func()
}

// e2eTimeout bounds every wait in the e2e helpers.
const e2eTimeout = 20 * time.Second

// startE2E starts the service with serve in a goroutine and returns once it
// is up. Cleanup stops it (cancel, drain, close) and fails the test if serve
// returned an error.
func startE2E(tb testing.TB, o e2eOptions) *e2eService {
	tb.Helper()
	dir := tb.TempDir()
	s := &e2eService{
		logs:         &syncBuffer{},
		traces:       &syncBuffer{},
		clientSecret: "e2e-client-secret-" + randomHex(tb, 12),
		refreshToken: "1000.e2e-refresh-" + randomHex(tb, 12),
	}

	seed := o.Seed
	if seed == nil {
		var err error
		if seed, err = zohoemu.DemoSeed(); err != nil {
			tb.Fatal(err)
		}
	}
	seed = withE2EClient(tb, seed, s.clientSecret, s.refreshToken)
	seedPath := filepath.Join(dir, "seed.json")
	writeJSON(tb, seedPath, seed)

	yaml := fmt.Sprintf(`
nats:
  url: embedded
  embedded_addr: 127.0.0.1:0
  store_dir: %q
  consumer:
    ack_wait: 10s
    max_deliver: %d
    backoff: [20ms]
  concurrency: %d
zoho:
  emulator: true
  emulator_addr: 127.0.0.1:0
  emulator_seed: %q
  api_version: v8
  client_id: %s
  client_secret: ${E2E_CLIENT_SECRET}
  refresh_token: ${E2E_REFRESH_TOKEN}
  timeout: 5s
telemetry:
  traces: %s
  metrics_addr: 127.0.0.1:0
  log_format: json
  log_level: %s
rules:
%s
`, filepath.Join(dir, "nats"), cmp.Or(o.MaxDeliver, 3), cmp.Or(o.Concurrency, 4), seedPath, e2eClientID,
		cmp.Or(o.Traces, "none"), cmp.Or(o.LogLevel, "debug"), indent(cmp.Or(o.Rules, e2eRules), "  "))
	env := map[string]string{"E2E_CLIENT_SECRET": s.clientSecret, "E2E_REFRESH_TOKEN": s.refreshToken}
	cfg, err := LoadConfig([]byte(yaml), func(k string) string { return env[k] })
	if err != nil {
		tb.Fatalf("e2e config: %v", err)
	}
	if o.Mutate != nil {
		o.Mutate(cfg)
	}
	s.cfg = cfg

	procs := slices.Clone(o.SpanProcessors)
	if o.RecordSpans {
		s.spans = tracetest.NewSpanRecorder()
		procs = append(procs, s.spans)
	}
	started := make(chan *service, 1)
	opts := serviceOptions{
		LogWriter:      s.logs,
		TraceWriter:    s.traces,
		SpanProcessors: procs,
		Readers:        o.Readers,
		Consumer: func(c *consumer.Config) {
			c.ProbeInterval = 20 * time.Millisecond
			c.MaxProbeInterval = 200 * time.Millisecond
			c.ShutdownGrace = 2 * time.Second
			if o.Consumer != nil {
				o.Consumer(c)
			}
		},
		Started: func(svc *service) { started <- svc },
	}
	sio := stdio{stdin: strings.NewReader(""), stdout: s.traces, stderr: s.logs, getenv: func(k string) string { return env[k] }}

	ctx, cancel := context.WithCancel(context.WithoutCancel(tb.Context()))
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, sio, opts) }()
	s.stop = sync.OnceFunc(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				tb.Errorf("serve returned: %v", err)
			}
		case <-time.After(e2eTimeout):
			tb.Errorf("serve did not return within %v of cancel", e2eTimeout)
		}
	})
	tb.Cleanup(s.stop)

	select {
	case s.svc = <-started:
	case err := <-done:
		done <- err // for stop
		tb.Fatalf("serve returned before the service was up: %v\nlogs:\n%s", err, s.logs)
	case <-time.After(e2eTimeout):
		tb.Fatalf("service not up within %v\nlogs:\n%s", e2eTimeout, s.logs)
	}
	s.emu = s.svc.emu
	s.natsURL = s.svc.natsURL
	s.metricsAddr = s.svc.tel.Addr()
	if s.emu == nil || s.metricsAddr == "" {
		tb.Fatalf("service up without emulator (%v) or metrics listener (%q)", s.emu != nil, s.metricsAddr)
	}

	// Registered after serve's cleanup, so it runs first: the publisher goes
	// away before the server does.
	s.nc, err = nats.Connect(s.natsURL, nats.Name("e2e-publisher"))
	if err != nil {
		tb.Fatalf("connect to the service's nats: %v", err)
	}
	tb.Cleanup(s.nc.Close)
	if s.js, err = jetstream.New(s.nc); err != nil {
		tb.Fatal(err)
	}
	return s
}

// withE2EClient returns a copy of seed whose first client (or a new one
// acting as the first user) has the e2e credentials.
func withE2EClient(tb testing.TB, seed *zohoemu.Seed, secret, refresh string) *zohoemu.Seed {
	tb.Helper()
	c := *seed
	c.Clients = slices.Clone(seed.Clients)
	if len(c.Clients) == 0 {
		if len(c.Users) == 0 {
			tb.Fatal("e2e seed has neither clients nor users")
		}
		c.Clients = []zohoemu.Client{{UserID: c.Users[0].ID, Scopes: []string{
			"ZohoCRM.share.ALL", "ZohoCRM.users.READ"}}}
	}
	c.Clients[0].ClientID = e2eClientID
	c.Clients[0].ClientSecret = secret
	c.Clients[0].RefreshToken = refresh
	return &c
}

// e2eEvent is a CloudEvent with JSON data, source urn:e2e and subject
// Deals/<deal_id> when data has one.
func e2eEvent(id, typ string, data map[string]any) event.Event {
	ev := event.New()
	ev.SetID(id)
	ev.SetType(typ)
	ev.SetSource("urn:e2e")
	ev.SetTime(time.Now().UTC())
	if deal, ok := data["deal_id"].(string); ok {
		ev.SetSubject("Deals/" + deal)
	}
	if err := ev.SetData(event.ApplicationJSON, data); err != nil {
		panic(err) // a map of JSON values always encodes
	}
	return ev
}

// subject is where the service's ingress would publish an event of type typ.
func (s *e2eService) subject(typ string) string { return s.cfg.Ingress.SubjectPrefix + "." + typ }

// publish publishes ev in structured mode on its type's subject and returns
// the stream's ack.
func (s *e2eService) publish(tb testing.TB, ev event.Event) *jetstream.PubAck {
	tb.Helper()
	ack, err := consumer.Publish(tb.Context(), s.js, s.subject(ev.Type()), ev, consumer.ModeStructured)
	if err != nil {
		tb.Fatalf("publish %s: %v", ev.ID(), err)
	}
	return ack
}

// publishMsg publishes a raw message (extra headers, a body that is no
// CloudEvent) and returns the stream's ack.
func (s *e2eService) publishMsg(tb testing.TB, msg *nats.Msg) *jetstream.PubAck {
	tb.Helper()
	ack, err := s.js.PublishMsg(tb.Context(), msg)
	if err != nil {
		tb.Fatalf("publish to %s: %v", msg.Subject, err)
	}
	return ack
}

// waitFor polls cond until it returns nil, failing the test with cond's last
// error after e2eTimeout.
func waitFor(tb testing.TB, what string, cond func() error) {
	tb.Helper()
	deadline := time.NewTimer(e2eTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		select {
		case <-deadline.C:
			tb.Fatalf("%s: still not true after %v: %v", what, e2eTimeout, err)
		case <-tb.Context().Done():
			tb.Fatalf("%s: test ended while waiting: %v", what, err)
		case <-tick.C:
		}
	}
}

// consumerInfo reads the service's durable consumer.
func (s *e2eService) consumerInfo(tb testing.TB) *jetstream.ConsumerInfo {
	tb.Helper()
	c, err := s.js.Consumer(tb.Context(), s.cfg.NATS.Stream.Name, s.cfg.NATS.Consumer.Durable)
	if err != nil {
		tb.Fatalf("consumer: %v", err)
	}
	info, err := c.Info(tb.Context())
	if err != nil {
		tb.Fatalf("consumer info: %v", err)
	}
	return info
}

// waitSettled waits until every message up to stream sequence seq was acked
// or terminated (dead-lettered), i.e. the consumer's ack floor reached it.
func (s *e2eService) waitSettled(tb testing.TB, seq uint64) {
	tb.Helper()
	waitFor(tb, fmt.Sprintf("stream sequence %d settled", seq), func() error {
		info := s.consumerInfo(tb)
		if info.AckFloor.Stream < seq {
			return fmt.Errorf("ack floor %d, %d pending, %d waiting for ack", info.AckFloor.Stream, info.NumPending, info.NumAckPending)
		}
		return nil
	})
}

// deadLetters returns the messages in the dead-letter stream.
func (s *e2eService) deadLetters(tb testing.TB) []*nats.Msg {
	tb.Helper()
	st, err := s.js.Stream(tb.Context(), s.cfg.NATS.DeadLetter.Stream)
	if err != nil {
		tb.Fatalf("dead-letter stream: %v", err)
	}
	info, err := st.Info(tb.Context())
	if err != nil {
		tb.Fatalf("dead-letter stream info: %v", err)
	}
	var out []*nats.Msg
	for seq := info.State.FirstSeq; seq > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(tb.Context(), seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			tb.Fatalf("dead letter %d: %v", seq, err)
		}
		out = append(out, &nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data})
	}
	return out
}

// get sends GET path to the metrics listener and returns the status and body.
func (s *e2eService) get(tb testing.TB, path string) (int, string) {
	tb.Helper()
	req, err := http.NewRequestWithContext(tb.Context(), http.MethodGet, "http://"+s.metricsAddr+path, nil)
	if err != nil {
		tb.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("GET %s: read body: %v", path, err)
	}
	return resp.StatusCode, string(body)
}

// scrape reads /metrics and parses it.
func (s *e2eService) scrape(tb testing.TB) promMetrics {
	tb.Helper()
	status, body := s.get(tb, "/metrics")
	if status != http.StatusOK {
		tb.Fatalf("GET /metrics: status %d:\n%s", status, body)
	}
	m, err := parseProm(body)
	if err != nil {
		tb.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return m
}

// promSample is one line of the Prometheus text format.
type promSample struct {
	name   string
	labels map[string]string
	value  float64
}

// promMetrics is a parsed scrape.
type promMetrics []promSample

// sum adds up the samples named name whose labels include every one of want.
// It also reports whether any sample matched.
func (m promMetrics) sum(name string, want map[string]string) (float64, bool) {
	var (
		total float64
		found bool
	)
	for _, s := range m {
		if s.name != name {
			continue
		}
		match := true
		for k, v := range want {
			if s.labels[k] != v {
				match = false
				break
			}
		}
		if match {
			total += s.value
			found = true
		}
	}
	return total, found
}

// value is sum without the found flag: a missing series counts as 0.
func (m promMetrics) value(name string, want map[string]string) float64 {
	v, _ := m.sum(name, want)
	return v
}

// series lists the label sets of the samples named name, for failure messages.
func (m promMetrics) series(name string) []string {
	var out []string
	for _, s := range m {
		if s.name == name {
			keys := slices.Sorted(maps.Keys(s.labels))
			parts := make([]string, len(keys))
			for i, k := range keys {
				parts[i] = k + "=" + strconv.Quote(s.labels[k])
			}
			out = append(out, fmt.Sprintf("{%s} %g", strings.Join(parts, ","), s.value))
		}
	}
	return out
}

// parseProm parses the Prometheus text exposition format (the subset the
// client library writes: no timestamps needed, escaped label values).
func parseProm(text string) (promMetrics, error) {
	var out promMetrics
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s := promSample{labels: map[string]string{}}
		i := strings.IndexAny(line, "{ ")
		if i <= 0 {
			return nil, fmt.Errorf("line %d: no value: %q", n, line)
		}
		s.name, line = line[:i], line[i:]
		if line[0] == '{' {
			rest, err := parseLabels(line[1:], s.labels)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
			line = rest
		}
		fields := strings.Fields(line)
		if len(fields) == 0 {
			return nil, fmt.Errorf("line %d: no value", n)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("line %d: value: %w", n, err)
		}
		s.value = v
		out = append(out, s)
	}
	return out, sc.Err()
}

// parseLabels reads `k="v",...}` into labels and returns what follows the brace.
func parseLabels(s string, labels map[string]string) (string, error) {
	for {
		s = strings.TrimLeft(s, ", ")
		if strings.HasPrefix(s, "}") {
			return s[1:], nil
		}
		eq := strings.Index(s, `="`)
		if eq <= 0 {
			return "", fmt.Errorf("bad label in %q", s)
		}
		key := s[:eq]
		s = s[eq+2:]
		var val strings.Builder
		for {
			if s == "" {
				return "", fmt.Errorf("unterminated value of label %s", key)
			}
			c := s[0]
			s = s[1:]
			if c == '"' {
				break
			}
			if c == '\\' && s != "" {
				switch s[0] {
				case 'n':
					val.WriteByte('\n')
				default:
					val.WriteByte(s[0])
				}
				s = s[1:]
				continue
			}
			val.WriteByte(c)
		}
		labels[key] = val.String()
	}
}

// syncBuffer is an io.Writer that many goroutines may write to while a test
// reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lines splits what was written into lines, dropping empty ones.
func (b *syncBuffer) lines() []string {
	return slices.DeleteFunc(strings.Split(b.String(), "\n"), func(l string) bool { return strings.TrimSpace(l) == "" })
}

// logLines decodes the service's JSON log lines, failing on one that is not JSON.
func (s *e2eService) logLines(tb testing.TB) []map[string]any {
	tb.Helper()
	var out []map[string]any
	for _, l := range s.logs.lines() {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			tb.Fatalf("log line is not JSON: %v: %q", err, l)
		}
		out = append(out, m)
	}
	return out
}

func writeJSON(tb testing.TB, path string, v any) {
	tb.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		tb.Fatal(err)
	}
}

func randomHex(tb testing.TB, n int) string {
	tb.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// indent prefixes every non-empty line of s.
func indent(s, prefix string) string {
	lines := strings.Split(strings.Trim(s, "\n"), "\n")
	for i, l := range lines {
		if strings.TrimSpace(l) != "" {
			lines[i] = prefix + l
		}
	}
	return strings.Join(lines, "\n")
}
