package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// referenceConfig is the service's config reference: every key with its
// default value (the rules are examples).
const referenceConfig = `
# crmshare configuration: the keys the service accepts.
# Every key here must work as described; more keys may be added. Values shown are the defaults
# unless marked "example". ${NAME} is replaced by the environment variable NAME at load time
# (an unset variable is an error unless written ${NAME:-default}).

nats:
  url: embedded                 # "embedded" starts an in-process JetStream server; else e.g. nats://127.0.0.1:4222
  store_dir: ""                 # embedded server's store; empty = a directory under the OS temp dir
  creds_file: ""                # NATS credentials file (JWT + seed) for a real cluster
  tls: {ca_file: "", cert_file: "", key_file: ""}
  stream:
    name: CRM_EVENTS
    subjects: ["crm.events.>"]
    create: true                # create or update the stream, consumer, dead-letter stream and ledger; false = bind to existing ones
    max_age: 336h               # how far back a replay can reach
    duplicate_window: 2m
    replicas: 1
  consumer:
    durable: crmshare
    filter_subjects: []         # empty = all of the stream's subjects
    ack_wait: 60s
    max_deliver: 10
    backoff: [2s, 10s, 30s, 1m, 5m]   # nak delays by delivery count (the last repeats)
    max_ack_pending: 64
  concurrency: 16               # events processed at once (per-record order is kept)
  ledger:
    bucket: CRMSHARE_LEDGER     # JetStream key-value bucket of applied events (CloudEvent source + id)
    ttl: 0s                     # 0 = the stream's max_age
  dead_letter:
    stream: CRM_EVENTS_DLQ
    subject: crm.dlq            # dead letters are published to <subject>.<original subject>

zoho:
  emulator: false               # true = start the built-in emulator in-process and use it
  emulator_addr: 127.0.0.1:0    # where the in-process emulator listens (its /_emu/ admin API too)
  emulator_seed: ""             # example: deploy/examples/emulator-seed.json
  api_version: v8               # v2 | v2.1 | v8
  data_center: us               # us | eu | in | au | jp | ca | sa | cn
  api_url: ""                   # overrides the data centre's API domain (example: http://127.0.0.1:9000)
  accounts_url: ""              # overrides the data centre's accounts server
  client_id: ${ZOHO_CLIENT_ID}
  client_secret: ${ZOHO_CLIENT_SECRET}
  refresh_token: ${ZOHO_REFRESH_TOKEN}
  max_concurrency: 10           # in-flight Zoho calls across the whole process
  timeout: 15s
  notify: false                 # v8: notify_on_completion / notify_shared_members
  users_cache_ttl: 10m

telemetry:
  service_name: crmshare
  traces: otlp                  # otlp (configured by OTEL_* variables) | stdout | none
  metrics_addr: 127.0.0.1:9464  # /metrics, /healthz, /readyz; empty = off
  log_format: json              # json | text
  log_level: info

ingress:
  addr: ""                      # HTTP CloudEvents ingress, e.g. 127.0.0.1:8080; empty = off
  bearer_token: ""              # example: ${CRMSHARE_INGRESS_TOKEN}
  hmac_secret: ""               # HMAC-SHA256 of the body, hex, in header X-Signature-256: sha256=<hex>
  max_body_bytes: 1048576
  subject_prefix: crm.events

rules:                          # example
  - name: share-deal-with-assignee
    on: {type: deal.assigned}                    # type glob; also source, subject globs
    when: data.amount > 0                        # optional CEL condition
    action: grant                                # grant | revoke | set | revoke_all
    module: Deals
    record_id: data.deal_id                      # CEL
    recipients:
      - user: data.assignee.zoho_user_id         # CEL: a user id, or a list of them
        permission: read_write                   # read_only | read_write | full_access
        share_related_records: true
      - email: data.watchers.filter(w, w.contains("@"))   # CEL: an email, or a list of them
        permission: read_only
      - user: data.watchers.filter(w, !w.contains("@"))
        permission: read_only
  - name: unshare-previous-assignee
    on: {type: deal.reassigned}
    when: has(data.previous_assignee) && data.previous_assignee != null
    action: revoke
    module: Deals
    record_id: data.deal_id
    recipients:
      - user: data.previous_assignee.zoho_user_id
  - name: share-deal-with-new-assignee
    on: {type: deal.reassigned}
    action: grant
    module: Deals
    record_id: data.deal_id
    recipients:
      - user: data.assignee.zoho_user_id
        permission: read_write
        share_related_records: true
  - name: account-team
    on: {type: account.team.changed}
    action: set
    module: Accounts
    record_id: data.account_id
    recipients:
      - email: data.team.filter(m, m.role == "owner").map(m, m.email)
        permission: full_access
      - email: data.team.filter(m, m.role != "owner").map(m, m.email)
        permission: read_only
  - name: closed-deals-are-private-again
    on: {type: deal.closed}
    action: revoke_all
    module: Deals
    record_id: data.deal_id
`

// referenceEnv sets the variables the reference reads.
var referenceEnv = map[string]string{
	"ZOHO_CLIENT_ID":     "1000.TESTCLIENT",
	"ZOHO_CLIENT_SECRET": "test-secret-value",
	"ZOHO_REFRESH_TOKEN": "1000.test.refresh",
}

func envFunc(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

// wantDefaults is the config-reference's defaults, written out.
func wantDefaults() Config {
	return Config{
		NATS: NATSConfig{
			URL: "embedded", EmbeddedAddr: "127.0.0.1:4222",
			Stream: StreamConfig{
				Name: "CRM_EVENTS", Subjects: []string{"crm.events.>"}, Create: true,
				MaxAge: 336 * time.Hour, DuplicateWindow: 2 * time.Minute, Replicas: 1,
			},
			Consumer: ConsumerConfig{
				Durable: "crmshare", FilterSubjects: []string{}, AckWait: 60 * time.Second, MaxDeliver: 10,
				Backoff:       []time.Duration{2 * time.Second, 10 * time.Second, 30 * time.Second, time.Minute, 5 * time.Minute},
				MaxAckPending: 64,
			},
			Concurrency: 16,
			Ledger:      LedgerConfig{Bucket: "CRMSHARE_LEDGER"},
			DeadLetter:  DeadLetterConfig{Stream: "CRM_EVENTS_DLQ", Subject: "crm.dlq"},
		},
		Zoho: ZohoConfig{
			EmulatorAddr: "127.0.0.1:0", APIVersion: "v8", DataCenter: "us",
			ClientID: "1000.TESTCLIENT", ClientSecret: "test-secret-value", RefreshToken: "1000.test.refresh",
			MaxConcurrency: 10, Timeout: 15 * time.Second, UsersCacheTTL: 10 * time.Minute,
		},
		Telemetry: TelemetryConfig{ServiceName: "crmshare", Traces: "otlp", MetricsAddr: "127.0.0.1:9464", LogFormat: "json", LogLevel: "info"},
		Ingress:   IngressConfig{MaxBodyBytes: 1048576, SubjectPrefix: "crm.events"},
	}
}

// withoutRules compares configs apart from their rules.
func withoutRules(c *Config) Config {
	out := *c
	out.Rules = nil
	return out
}

func TestLoadConfigDefaults(t *testing.T) {
	tests := []struct {
		name string
		yaml string
	}{
		{"empty file", ""},
		{"empty sections", "nats:\nzoho:\ntelemetry:\ningress:\nrules:\n"},
		{"the reference, every key", referenceConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := LoadConfig([]byte(tt.yaml), envFunc(referenceEnv))
			if err != nil {
				t.Fatalf("LoadConfig: %v", err)
			}
			if diff := cmp.Diff(withoutRules(cfg), wantDefaults()); diff != "" {
				t.Errorf("config (-got +want):\n%s", diff)
			}
		})
	}
}

func TestLoadConfigReferenceRules(t *testing.T) {
	cfg, err := LoadConfig([]byte(referenceConfig), envFunc(referenceEnv))
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}
	rc := cfg.RulesConfig()
	var got []string
	for _, r := range rc.Rules {
		got = append(got, fmt.Sprintf("%s %s %s line %d", r.Name, r.Type, r.Action, r.Line))
	}
	want := []string{
		"share-deal-with-assignee deal.assigned grant line 65",
		"unshare-previous-assignee deal.reassigned revoke line 79",
		"share-deal-with-new-assignee deal.reassigned grant line 87",
		"account-team account.team.changed set line 96",
		"closed-deals-are-private-again deal.closed revoke_all line 106",
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("rules (-got +want):\n%s", diff)
	}
	// referenceConfig starts with a blank line: the reference's line N is line N+1.
	if got, want := rc.Rules[0].Recipients[1].Line, 75; got != want {
		t.Errorf("line of rules[0].recipients[1] = %d, want %d", got, want)
	}
}

func TestLoadConfigValues(t *testing.T) {
	yaml := `
nats:
  url: nats://a:4222, nats://b:4222
  consumer:
    backoff: [1s, 1m]
    max_deliver: ${MAX_DELIVER:-5}
  ledger: {ttl: 720h}
zoho:
  emulator: ${EMU:-false}
  api_version: v2.1
  client_id: "${ZOHO_CLIENT_ID}"
  client_secret: $${literal}
  timeout: ${ZOHO_TIMEOUT:-20s}
telemetry:
  metrics_addr: ""
ingress:
  addr: 127.0.0.1:8080
  bearer_token: ${TOKEN}
`
	env := map[string]string{"ZOHO_CLIENT_ID": "007", "ZOHO_REFRESH_TOKEN": "r", "TOKEN": "t0k", "EMU": ""}
	cfg, err := LoadConfig([]byte(yaml), envFunc(env))
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}
	want := wantDefaults()
	want.NATS.URL = "nats://a:4222, nats://b:4222"
	want.NATS.Consumer.Backoff = []time.Duration{time.Second, time.Minute}
	want.NATS.Consumer.MaxDeliver = 5
	want.NATS.Ledger.TTL = 720 * time.Hour
	want.Zoho.APIVersion = "v2.1"
	want.Zoho.ClientID = "007"
	want.Zoho.ClientSecret = "${literal}"
	want.Zoho.RefreshToken = "r"
	want.Zoho.Timeout = 20 * time.Second
	want.Telemetry.MetricsAddr = ""
	want.Ingress.Addr = "127.0.0.1:8080"
	want.Ingress.BearerToken = "t0k"
	if diff := cmp.Diff(withoutRules(cfg), want); diff != "" {
		t.Errorf("config (-got +want):\n%s", diff)
	}
}

// problemAt is what a test compares of a Problem.
type problemAt struct {
	Line int
	Path string
}

func problemsOf(t *testing.T, err error) []problemAt {
	t.Helper()
	var out []problemAt
	for _, e := range problemsIn(err) {
		var p *Problem
		if !errors.As(e, &p) {
			t.Fatalf("%v is not a *Problem", e)
		}
		out = append(out, problemAt{p.Line, p.Path})
	}
	return out
}

// brokenConfig has one or more problems on most lines; TestLoadConfigProblems
// lists them by line.
const brokenConfig = `nats:
  url: embeded
  stream:
    name: CRM EVENTS
    max_age: forever
    replicas: 7
  consumer:
    ack_wiat: 60s
    max_deliver: 0
    backoff: []
  dead_letter:
    subject: crm.events.dlq
  colour: blue
zoho:
  api_version: v2
  client_secret: ${ZOHO_SECRET_MISSING}
  timeout: ${TIMEOUT:-90s}
  api_url: ftp://zoho
telemetry:
  traces: jaeger
  log_level: loud
ingress:
  addr: 8080
  max_body_bytes: 0
rules:
  - name: share-deal
    on: {type: "deal.[", sorce: x}
    when: data.amount +
    action: share
    module: Deals
    record_id: data.deal_id
    recipients:
      - group: "'4150868000002000101'"
        permission: admin
  - name: share-deal
    on: {type: deal.closed}
    action: revoke_all
    module: Deals
    record_id: 42
    recipients:
      - user: "'1'"
`

func TestLoadConfigProblems(t *testing.T) {
	cfg, err := LoadConfig([]byte(brokenConfig), envFunc(nil))
	if err == nil {
		t.Fatal("LoadConfig of a broken config succeeded")
	}
	if cfg == nil {
		t.Fatal("no partial config returned")
	}
	want := []problemAt{
		{2, "nats.url"},
		{4, "nats.stream.name"},
		{5, "nats.stream.max_age"},
		{6, "nats.stream.replicas"},
		{8, "nats.consumer.ack_wiat"},
		{9, "nats.consumer.max_deliver"},
		{10, "nats.consumer.backoff"},
		{12, "nats.dead_letter.subject"},
		{13, "nats.colour"},
		{14, "zoho.client_id"},
		{14, "zoho.refresh_token"},
		{16, "zoho.client_secret"},
		{17, "zoho.timeout"},
		{18, "zoho.api_url"},
		{20, "telemetry.traces"},
		{21, "telemetry.log_level"},
		{23, "ingress.addr"},
		{24, "ingress.max_body_bytes"},
		{27, `rules[0] "share-deal": on.sorce`},
		{27, `rules[0] "share-deal": on.type`},
		{28, `rules[0] "share-deal": when`},
		{29, `rules[0] "share-deal": action`},
		{33, `rules[0] "share-deal": recipients[0].group`},
		{33, `rules[0] "share-deal": recipients[0].permission`},
		{35, `rules[1] "share-deal": name`},
		{39, `rules[1] "share-deal": record_id`},
		{41, `rules[1] "share-deal": recipients`},
	}
	if diff := cmp.Diff(problemsOf(t, err), want); diff != "" {
		t.Errorf("problems (-got +want):\n%s\nerror:\n%v", diff, err)
	}

	// The same through the command: every problem, one per line, exit 1.
	dir := t.TempDir()
	file := dir + "/broken.yaml"
	if err := writeFile(file, brokenConfig); err != nil {
		t.Fatal(err)
	}
	got := runCLI(t, nil, nil, "config", "check", "--config", file)
	if got.code != exitFail {
		t.Errorf("config check exit code = %d, want %d", got.code, exitFail)
	}
	if lines := strings.Count(got.stderr, "\n  line "); lines != len(want) {
		t.Errorf("config check printed %d problems, want %d:\n%s", lines, len(want), got.stderr)
	}
}

func TestLoadConfigSyntaxError(t *testing.T) {
	_, err := LoadConfig([]byte("nats:\n  url: [embedded\n"), envFunc(nil))
	var p *Problem
	if !errors.As(err, &p) || p.Line == 0 {
		t.Fatalf("LoadConfig = %v; want a *Problem with a line", err)
	}
	for _, doc := range []string{"- a\n- b\n", "just a string\n"} {
		if _, err := LoadConfig([]byte(doc), envFunc(nil)); err == nil {
			t.Errorf("LoadConfig(%q) succeeded; want an error", doc)
		}
	}
}

func TestConfigCheckDevConfig(t *testing.T) {
	got := runCLI(t, nil, nil, "config", "check", "--config", devConfig)
	if got.code != exitOK {
		t.Fatalf("exit code = %d, stderr:\n%s", got.code, got.stderr)
	}
	if !strings.HasPrefix(got.stdout, "config OK") || !strings.Contains(got.stdout, "rules:     5") {
		t.Errorf("summary:\n%s", got.stdout)
	}
	// dev.yaml's credentials are the emulator's made-up ones, overridable.
	cfg, err := LoadConfigFile(devConfig, envFunc(map[string]string{"ZOHO_CLIENT_ID": "1000.OTHER"}))
	if err != nil {
		t.Fatal(err)
	}
	gotCreds := []string{cfg.Zoho.ClientID, string(cfg.Zoho.ClientSecret), string(cfg.Zoho.RefreshToken)}
	if diff := cmp.Diff(gotCreds, []string{"1000.OTHER", "dev-secret", "1000.dev.refresh"}); diff != "" {
		t.Errorf("credentials (-got +want):\n%s", diff)
	}
}

func TestExpandEnv(t *testing.T) {
	env := envFunc(map[string]string{"A": "alpha", "EMPTY": ""})
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{"${A}", "alpha", false},
		{"x-${A}-y", "x-alpha-y", false},
		{"${B:-beta}", "beta", false},
		{"${A:-beta}", "alpha", false},
		{"${EMPTY:-d}", "d", false},
		{"${B:-}", "", false},
		{"$$A and $${A}", "$A and ${A}", false},
		{"cost $5", "cost $5", false},
		{"${B}", "", true},
		{"${A", "", true},
		{"${1A}", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, _, err := expandEnv(tt.in, env)
			if (err != nil) != tt.wantErr {
				t.Fatalf("expandEnv(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("expandEnv(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestSecretsStayHidden: secrets from the file or the environment appear in
// no error, summary, log or encoding of the config.
func TestSecretsStayHidden(t *testing.T) {
	const secret = "s3cr3t-do-not-print"
	env := envFunc(map[string]string{"ZOHO_CLIENT_SECRET": secret, "ZOHO_REFRESH_TOKEN": secret, "ZOHO_CLIENT_ID": "1"})
	cfg, err := LoadConfig([]byte("zoho:\n  max_concurrency: ${ZOHO_CLIENT_SECRET}\ningress:\n  hmac_secret: "+secret+"\n"), env)
	if err == nil {
		t.Fatal("a secret as max_concurrency was accepted")
	}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("config", "zoho", cfg.Zoho.ClientSecret, "hmac", cfg.Ingress.HMACSecret)
	var summary bytes.Buffer
	summarize(&summary, cfg)
	encoded, jerr := json.Marshal(cfg)
	if jerr != nil {
		t.Fatal(jerr)
	}
	for name, out := range map[string]string{
		"error":   err.Error(),
		"%v":      fmt.Sprintf("%v", cfg),
		"%+v":     fmt.Sprintf("%+v", cfg),
		"%#v":     fmt.Sprintf("%#v", cfg),
		"slog":    logs.String(),
		"summary": summary.String(),
		"json":    string(encoded),
	} {
		if strings.Contains(out, secret) {
			t.Errorf("%s shows the secret:\n%s", name, out)
		}
	}
	if string(cfg.Ingress.HMACSecret) != secret {
		t.Error("the secret's value was lost")
	}
}

func TestSubjects(t *testing.T) {
	overlap := []struct {
		a, b string
		want bool
	}{
		{"crm.dlq.>", "crm.events.>", false},
		{"crm.events.dlq.>", "crm.events.>", true},
		{"crm.events.x", "crm.events.*", true},
		{"crm.events.x.y", "crm.events.*", false},
		{"crm.events", "crm.events.>", false},
		{"a.b", "a.b", true},
		{">", "a", true},
	}
	for _, tt := range overlap {
		if got := subjectsOverlap(tt.a, tt.b); got != tt.want {
			t.Errorf("subjectsOverlap(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
		if got := subjectsOverlap(tt.b, tt.a); got != tt.want {
			t.Errorf("subjectsOverlap(%q, %q) = %v, want %v", tt.b, tt.a, got, tt.want)
		}
	}
	valid := []struct {
		s         string
		wildcards bool
		want      bool
	}{
		{"crm.events.>", true, true},
		{"crm.events.>", false, false},
		{"crm.*.x", true, true},
		{"crm..x", true, false},
		{"crm.>.x", true, false},
		{"crm events", true, false},
		{"crm.ev*", true, false},
		{"", false, false},
	}
	for _, tt := range valid {
		if got := checkSubject(tt.s, tt.wildcards) == nil; got != tt.want {
			t.Errorf("checkSubject(%q, %v) ok = %v, want %v", tt.s, tt.wildcards, got, tt.want)
		}
	}
}

func writeFile(name, content string) error { return os.WriteFile(name, []byte(content), 0o600) }
