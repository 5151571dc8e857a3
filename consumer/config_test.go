package consumer

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/nats-io/nats.go"
)

func TestConfigDefaults(t *testing.T) {
	var cfg Config
	cfg.setDefaults()
	want := Config{
		Stream: StreamConfig{
			Name: "CRM_EVENTS", Subjects: []string{"crm.events.>"}, MaxAge: 336 * time.Hour,
			DuplicateWindow: 2 * time.Minute, Replicas: 1,
		},
		Consumer: ConsumerConfig{
			Durable: "crmshare", AckWait: 60 * time.Second, MaxDeliver: 10,
			BackOff:       []time.Duration{2 * time.Second, 10 * time.Second, 30 * time.Second, time.Minute, 5 * time.Minute},
			MaxAckPending: 64,
		},
		Ledger:           LedgerConfig{Bucket: "CRMSHARE_LEDGER", TTL: 336 * time.Hour},
		DeadLetter:       DeadLetterConfig{Stream: "CRM_EVENTS_DLQ", Subject: "crm.dlq"},
		Concurrency:      16,
		ProbeInterval:    time.Second,
		MaxProbeInterval: time.Minute,
		HandlerTimeout:   60 * time.Second,
		ShutdownGrace:    25 * time.Second,
		WatchInterval:    15 * time.Second,
	}
	if diff := cmp.Diff(want, cfg); diff != "" {
		t.Errorf("defaults mismatch (-want +got):\n%s", diff)
	}
}

func TestConfigValidate(t *testing.T) {
	valid := func() Config {
		c := Config{
			JS:      nil,
			Conn:    &nats.Conn{},
			Handler: HandlerFunc(func(context.Context, event.Event) error { return nil }),
		}
		c.setDefaults()
		return c
	}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   []string // substrings of the joined error; empty = valid
	}{
		{name: "valid", mutate: func(*Config) {}},
		{name: "everything missing", mutate: func(c *Config) { c.Conn, c.Handler = nil, nil },
			want: []string{"Conn is required", "Handler is required"}},
		{name: "bad names", mutate: func(c *Config) {
			c.Stream.Name = "a.b"
			c.DeadLetter.Subject = "dlq.>"
			c.DeadLetter.Stream = "a.b"
		}, want: []string{"Stream.Name", "DeadLetter.Stream \"a.b\": must not", "must differ", "DeadLetter.Subject"}},
		{name: "bad numbers", mutate: func(c *Config) {
			c.Consumer.AckWait = 10 * time.Millisecond
			c.Consumer.MaxDeliver = -5
			c.Consumer.BackOff = []time.Duration{time.Second, -time.Second}
			c.Consumer.MaxAckPending = 4
			c.Stream.Replicas = 7
			c.MaxProbeInterval = time.Millisecond
		}, want: []string{"AckWait", "MaxDeliver", "BackOff[1]", "MaxAckPending 4", "Replicas 7", "MaxProbeInterval"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.mutate(&c)
			err := c.Validate()
			// JS is always missing here; it must be reported too.
			want := append([]string{"JS is required"}, tt.want...)
			if err == nil {
				t.Fatalf("Validate() = nil, want errors mentioning %q", want)
			}
			for _, w := range want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to mention %q", err, w)
				}
			}
			if got, wantN := len(unjoin(err)), len(want); got != wantN {
				t.Errorf("Validate() reported %d problems, want %d: %v", got, wantN, err)
			}
		})
	}
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func TestServerBackOff(t *testing.T) {
	tests := []struct {
		name       string
		maxDeliver int
		backoff    []time.Duration
		want       []time.Duration
	}{
		{name: "fewer steps than deliveries", maxDeliver: 10, backoff: []time.Duration{time.Second, 2 * time.Second},
			want: []time.Duration{61 * time.Second, 62 * time.Second}},
		{name: "trimmed below MaxDeliver", maxDeliver: 3, backoff: []time.Duration{1, 2, 3, 4},
			want: []time.Duration{60*time.Second + 1, 60*time.Second + 2}},
		{name: "single delivery has none", maxDeliver: 1, backoff: []time.Duration{time.Second}},
		{name: "unlimited keeps all", maxDeliver: -1, backoff: []time.Duration{1, 2, 3},
			want: []time.Duration{60*time.Second + 1, 60*time.Second + 2, 60*time.Second + 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{Consumer: ConsumerConfig{AckWait: time.Minute, MaxDeliver: tt.maxDeliver, BackOff: tt.backoff}}
			if diff := cmp.Diff(tt.want, c.serverBackOff(), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("serverBackOff mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	_, err := New(Config{})
	if err == nil {
		t.Fatal("New(Config{}) = nil error, want one")
	}
	if !strings.Contains(err.Error(), "Handler is required") {
		t.Errorf("New(Config{}) = %v, want it to name the missing Handler", err)
	}
}

func TestStartEmbeddedRejectsNonLoopback(t *testing.T) {
	_, err := StartEmbedded(EmbeddedConfig{StoreDir: t.TempDir(), Host: "0.0.0.0"})
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("StartEmbedded on 0.0.0.0 = %v, want a loopback error", err)
	}
	_, err = StartEmbedded(EmbeddedConfig{})
	if err == nil || !strings.Contains(err.Error(), "StoreDir") {
		t.Errorf("StartEmbedded without StoreDir = %v, want a StoreDir error", err)
	}
}
