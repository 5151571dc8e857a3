package main

import (
	"log/slog"
	"time"

	"github.com/crmshare/crmshare/handlers"
)

// Config is the service's YAML configuration file (see deploy/examples/dev.yaml
// and the README). Every field documents its default; LoadConfig fills the
// defaults before the file is decoded, so a key left out of the file keeps its
// default and a key written with an empty or zero value means that value.
type Config struct {
	NATS      NATSConfig      `yaml:"nats"`
	Zoho      ZohoConfig      `yaml:"zoho"`
	Telemetry TelemetryConfig `yaml:"telemetry"`
	Ingress   IngressConfig   `yaml:"ingress"`
	// Rules map CloudEvents to share intents, in order. Default: none.
	Rules []RuleConfig `yaml:"rules"`
	// Dev holds conveniences for trying crmshare out.
	Dev DevConfig `yaml:"dev"`
}

// DevConfig is the dev section: what run does to show itself at work.
type DevConfig struct {
	// Publish lists CloudEvent JSON files, or directories of them, that run
	// publishes once the service is ready (a directory's events in the order
	// of their time attribute). Default: none.
	Publish []string `yaml:"publish"`
}

// NATSConfig is the nats section: the JetStream connection, stream, consumer,
// ledger and dead letters.
type NATSConfig struct {
	// URL is "embedded" (an in-process JetStream server) or server URLs such as
	// "nats://127.0.0.1:4222" (comma-separated for a cluster). Default: "embedded".
	URL string `yaml:"url"`
	// StoreDir is the embedded server's store; empty means a directory under the
	// OS temp dir. Default: "".
	StoreDir string `yaml:"store_dir"`
	// EmbeddedAddr is where the embedded server listens, so that publish,
	// replay and dlq run beside the service can reach it; port 0 picks a free
	// port. Loopback only. Default: "127.0.0.1:4222".
	EmbeddedAddr string `yaml:"embedded_addr"`
	// CredsFile is a NATS credentials file (JWT and seed). Default: "" (none).
	CredsFile string `yaml:"creds_file"`
	// TLS configures TLS to the NATS servers. Default: all empty (no client TLS config).
	TLS      TLSConfig      `yaml:"tls"`
	Stream   StreamConfig   `yaml:"stream"`
	Consumer ConsumerConfig `yaml:"consumer"`
	// Concurrency is how many events are processed at once (per-record order is
	// kept). Default: 16.
	Concurrency int              `yaml:"concurrency"`
	Ledger      LedgerConfig     `yaml:"ledger"`
	DeadLetter  DeadLetterConfig `yaml:"dead_letter"`
}

// TLSConfig names the PEM files for TLS to NATS. Default: all empty.
type TLSConfig struct {
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// StreamConfig is the JetStream stream the events are read from.
type StreamConfig struct {
	// Name of the stream. Default: "CRM_EVENTS".
	Name string `yaml:"name"`
	// Subjects the stream captures. Default: ["crm.events.>"].
	Subjects []string `yaml:"subjects"`
	// Create creates or updates the stream, consumer, dead-letter stream and
	// ledger; false binds to existing ones. Default: true.
	Create bool `yaml:"create"`
	// MaxAge is how far back a replay can reach. Default: 336h.
	MaxAge time.Duration `yaml:"max_age"`
	// DuplicateWindow is the publish dedup window (Nats-Msg-Id). Default: 2m.
	DuplicateWindow time.Duration `yaml:"duplicate_window"`
	// Replicas of the stream. Default: 1.
	Replicas int `yaml:"replicas"`
}

// ConsumerConfig is the durable pull consumer.
type ConsumerConfig struct {
	// Durable name. Default: "crmshare".
	Durable string `yaml:"durable"`
	// FilterSubjects narrows the consumer; empty means all of the stream's
	// subjects. Default: [].
	FilterSubjects []string `yaml:"filter_subjects"`
	// AckWait before JetStream redelivers. Default: 60s.
	AckWait time.Duration `yaml:"ack_wait"`
	// MaxDeliver caps deliveries of one message. Default: 10.
	MaxDeliver int `yaml:"max_deliver"`
	// Backoff is the nak delay by delivery count; the last repeats.
	// Default: [2s, 10s, 30s, 1m, 5m].
	Backoff []time.Duration `yaml:"backoff"`
	// MaxAckPending caps unacknowledged messages. Default: 64.
	MaxAckPending int `yaml:"max_ack_pending"`
}

// LedgerConfig is the key-value bucket of applied events.
type LedgerConfig struct {
	// Bucket name. Default: "CRMSHARE_LEDGER".
	Bucket string `yaml:"bucket"`
	// TTL of an entry; 0 means the stream's max_age. Default: 0s.
	TTL time.Duration `yaml:"ttl"`
}

// DeadLetterConfig is where events that cannot be applied go.
type DeadLetterConfig struct {
	// Stream holding dead letters. Default: "CRM_EVENTS_DLQ".
	Stream string `yaml:"stream"`
	// Subject prefix: dead letters are published to <subject>.<original subject>.
	// Default: "crm.dlq".
	Subject string `yaml:"subject"`
}

// ZohoConfig is the zoho section: the API, its credentials, or the emulator.
type ZohoConfig struct {
	// Emulator starts the built-in Zoho emulator in-process and uses it. Default: false.
	Emulator bool `yaml:"emulator"`
	// EmulatorAddr is where the emulator listens (its /_emu/ admin API too).
	// Default: "127.0.0.1:0".
	EmulatorAddr string `yaml:"emulator_addr"`
	// EmulatorSeed is the emulator's seed file. Default: "" (an empty org).
	EmulatorSeed string `yaml:"emulator_seed"`
	// APIVersion is "v2", "v2.1" or "v8". Default: "v8".
	APIVersion string `yaml:"api_version"`
	// DataCenter is us, eu, in, au, jp, ca, sa or cn. Default: "us".
	DataCenter string `yaml:"data_center"`
	// APIURL overrides the data centre's API domain. Default: "".
	APIURL string `yaml:"api_url"`
	// AccountsURL overrides the data centre's accounts server. Default: "".
	AccountsURL string `yaml:"accounts_url"`
	// ClientID of the OAuth client. Default: $ZOHO_CLIENT_ID.
	ClientID string `yaml:"client_id"`
	// ClientSecret of the OAuth client. Default: $ZOHO_CLIENT_SECRET.
	ClientSecret Secret `yaml:"client_secret"`
	// RefreshToken of the OAuth grant. Default: $ZOHO_REFRESH_TOKEN.
	RefreshToken Secret `yaml:"refresh_token"`
	// MaxConcurrency caps in-flight Zoho calls across the process. Default: 10.
	MaxConcurrency int `yaml:"max_concurrency"`
	// Timeout of one Zoho call. Default: 15s.
	Timeout time.Duration `yaml:"timeout"`
	// Notify sets v8's notify_on_completion / notify_shared_members. Default: false.
	Notify bool `yaml:"notify"`
	// UsersCacheTTL is how long email and user lookups are cached. Default: 10m.
	UsersCacheTTL time.Duration `yaml:"users_cache_ttl"`
}

// TelemetryConfig is the telemetry section.
type TelemetryConfig struct {
	// ServiceName of traces and metrics. Default: "crmshare".
	ServiceName string `yaml:"service_name"`
	// Traces is "otlp" (configured by OTEL_* variables), "stdout" or "none". Default: "otlp".
	Traces string `yaml:"traces"`
	// MetricsAddr serves /metrics, /healthz and /readyz; empty means off.
	// Default: "127.0.0.1:9464".
	MetricsAddr string `yaml:"metrics_addr"`
	// LogFormat is "json" or "text". Default: "json".
	LogFormat string `yaml:"log_format"`
	// LogLevel is "debug", "info", "warn" or "error". Default: "info".
	LogLevel string `yaml:"log_level"`
}

// IngressConfig is the optional HTTP CloudEvents ingress.
type IngressConfig struct {
	// Addr to listen on, e.g. "127.0.0.1:8080"; empty means off. Default: "".
	Addr string `yaml:"addr"`
	// BearerToken callers must send; empty means none. Default: "".
	BearerToken Secret `yaml:"bearer_token"`
	// HMACSecret for the body's HMAC-SHA256 in X-Signature-256; empty means none. Default: "".
	HMACSecret Secret `yaml:"hmac_secret"`
	// MaxBodyBytes caps a request body. Default: 1048576.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// SubjectPrefix: an event of type T is published to <prefix>.<T>. Default: "crm.events".
	SubjectPrefix string `yaml:"subject_prefix"`
}

// RuleConfig is one entry of the rules section; see handlers.RuleConfig for
// what each key means.
type RuleConfig struct {
	Name       string            `yaml:"name"`
	On         RuleOnConfig      `yaml:"on"`
	When       string            `yaml:"when"`
	Action     string            `yaml:"action"`
	Module     string            `yaml:"module"`
	RecordID   string            `yaml:"record_id"`
	Recipients []RecipientConfig `yaml:"recipients"`

	line  int            // where the rule starts; set by LoadConfig
	lines map[string]int // line of each key ("on.type", "when", ...); set by LoadConfig
}

// RuleOnConfig is what a rule matches: type (exact or glob), and optional
// source and subject globs.
type RuleOnConfig struct {
	Type    string `yaml:"type"`
	Source  string `yaml:"source"`
	Subject string `yaml:"subject"`
}

// RecipientConfig is one entry of a rule's recipients.
type RecipientConfig struct {
	User         string `yaml:"user"`
	Email        string `yaml:"email"`
	Group        string `yaml:"group"`
	Role         string `yaml:"role"`
	Permission   string `yaml:"permission"`
	ShareRelated bool   `yaml:"share_related_records"`

	line int // set by LoadConfig
}

// Secret is a config value that must not be printed: it formats and logs as
// REDACTED. Convert it with string(s) where the value is needed.
type Secret string

// String returns "REDACTED" (or "" when the secret is empty).
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "REDACTED"
}

// GoString keeps %#v from printing the secret.
func (s Secret) GoString() string { return `"` + s.String() + `"` }

// LogValue keeps slog from printing the secret.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText keeps encoders from writing the secret.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// defaultConfig is the configuration before the file is read: the documented
// defaults, with the Zoho credentials from the environment.
func defaultConfig(getenv func(string) string) Config {
	return Config{
		NATS: NATSConfig{
			URL:          "embedded",
			EmbeddedAddr: "127.0.0.1:4222",
			Stream: StreamConfig{
				Name:            "CRM_EVENTS",
				Subjects:        []string{"crm.events.>"},
				Create:          true,
				MaxAge:          336 * time.Hour,
				DuplicateWindow: 2 * time.Minute,
				Replicas:        1,
			},
			Consumer: ConsumerConfig{
				Durable:        "crmshare",
				FilterSubjects: []string{},
				AckWait:        60 * time.Second,
				MaxDeliver:     10,
				Backoff:        []time.Duration{2 * time.Second, 10 * time.Second, 30 * time.Second, time.Minute, 5 * time.Minute},
				MaxAckPending:  64,
			},
			Concurrency: 16,
			Ledger:      LedgerConfig{Bucket: "CRMSHARE_LEDGER"},
			DeadLetter:  DeadLetterConfig{Stream: "CRM_EVENTS_DLQ", Subject: "crm.dlq"},
		},
		Zoho: ZohoConfig{
			EmulatorAddr:   "127.0.0.1:0",
			APIVersion:     "v8",
			DataCenter:     "us",
			ClientID:       getenv("ZOHO_CLIENT_ID"),
			ClientSecret:   Secret(getenv("ZOHO_CLIENT_SECRET")),
			RefreshToken:   Secret(getenv("ZOHO_REFRESH_TOKEN")),
			MaxConcurrency: 10,
			Timeout:        15 * time.Second,
			UsersCacheTTL:  10 * time.Minute,
		},
		Telemetry: TelemetryConfig{
			ServiceName: "crmshare",
			Traces:      "otlp",
			MetricsAddr: "127.0.0.1:9464",
			LogFormat:   "json",
			LogLevel:    "info",
		},
		Ingress: IngressConfig{
			MaxBodyBytes:  1 << 20,
			SubjectPrefix: "crm.events",
		},
	}
}

// RulesConfig returns the rules section as the rules engine takes it.
func (c *Config) RulesConfig() handlers.RulesConfig {
	rc := handlers.RulesConfig{APIVersion: c.Zoho.APIVersion, Rules: make([]handlers.RuleConfig, 0, len(c.Rules))}
	for _, r := range c.Rules {
		hr := handlers.RuleConfig{
			Name:     r.Name,
			Type:     r.On.Type,
			Source:   r.On.Source,
			Subject:  r.On.Subject,
			When:     r.When,
			Action:   r.Action,
			Module:   r.Module,
			RecordID: r.RecordID,
			Line:     r.line,
			Lines:    r.lines,
		}
		for _, p := range r.Recipients {
			hr.Recipients = append(hr.Recipients, handlers.RecipientConfig{
				User:         p.User,
				Email:        p.Email,
				Group:        p.Group,
				Role:         p.Role,
				Permission:   p.Permission,
				ShareRelated: p.ShareRelated,
				Line:         p.line,
			})
		}
		rc.Rules = append(rc.Rules, hr)
	}
	return rc
}
