package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Config configures a Consumer. Every zero value is a documented default; the
// defaults equal the nats: section of the service's config reference.
//
// The caller owns the connection. Connect it so that it never gives up:
//
//	nc, err := nats.Connect(url,
//		nats.MaxReconnects(-1),         // reconnect forever
//		nats.RetryOnFailedConnect(true), // start even while the server is down
//	)
//
// Ready reports the connection status, so a broken link shows as not ready
// instead of a crashed process.
type Config struct {
	// JS is the JetStream context built on Conn. Required.
	JS jetstream.JetStream
	// Conn is the NATS connection, used for readiness and to flush acks on
	// shutdown. Required.
	Conn *nats.Conn

	// Stream is the stream of CloudEvents to consume.
	Stream StreamConfig
	// Consumer is the durable pull consumer on Stream.
	Consumer ConsumerConfig
	// Ledger is the key-value bucket of applied events.
	Ledger LedgerConfig
	// DeadLetter is where events that cannot be handled are kept.
	DeadLetter DeadLetterConfig

	// BindOnly makes Setup bind to an existing stream, consumer, dead-letter
	// stream and ledger bucket and fail if one is missing. The zero value
	// (false) creates or updates them (config "create: true").
	BindOnly bool

	// Concurrency is how many events are handled at once. Default 16.
	Concurrency int
	// Handler handles each decoded event. Required. If it also implements
	// Keyer, events whose ordering keys overlap are handled in stream order.
	Handler Handler
	// Probe checks whether handling can resume after an error asked to
	// suspend (rejected credentials, API credits used up). Nil means resume after each probe
	// interval without checking.
	Probe func(ctx context.Context) error
	// ProbeInterval is the first wait between probes while suspended; it
	// doubles up to MaxProbeInterval. Default 1s.
	ProbeInterval time.Duration
	// MaxProbeInterval caps the probe interval. Default 1m.
	MaxProbeInterval time.Duration

	// Force hands events to the Handler even when the ledger lists them as
	// applied (a forced replay). They are still recorded. Default false.
	Force bool
	// HandlerTimeout bounds one Handle call. Default Consumer.AckWait; the
	// consumer sends InProgress while the call runs.
	HandlerTimeout time.Duration
	// ShutdownGrace is how long running handlers may continue after Run's
	// context is done; what is left is naked for another replica. Default 25s.
	ShutdownGrace time.Duration
	// WatchInterval is how often the consumer's info is read to sample the
	// pending count and notice a deleted consumer. Default 15s.
	WatchInterval time.Duration

	// Logger receives one line per decision. Nil discards.
	Logger *slog.Logger
	// TracerProvider makes the process spans. Nil means no tracing.
	TracerProvider trace.TracerProvider
	// MeterProvider makes the consumer's metrics. Nil means no metrics.
	MeterProvider metric.MeterProvider
}

// StreamConfig describes the stream the events are published to.
type StreamConfig struct {
	// Name of the stream. Default "CRM_EVENTS".
	Name string
	// Subjects the stream captures. Default ["crm.events.>"].
	Subjects []string
	// MaxAge is how long events are kept, i.e. how far back a replay can
	// reach. Default 336h (14 days).
	MaxAge time.Duration
	// DuplicateWindow is how long a Nats-Msg-Id is remembered to drop a
	// duplicate publish. Default 2m.
	DuplicateWindow time.Duration
	// Replicas is the stream's replica count (also used for the dead-letter
	// stream and the ledger). Default 1.
	Replicas int
}

// ConsumerConfig describes the durable pull consumer.
type ConsumerConfig struct {
	// Durable is the consumer's name, shared by all replicas. Default "crmshare".
	Durable string
	// FilterSubjects narrows the stream's subjects. Empty means all of them.
	FilterSubjects []string
	// AckWait is how long the server waits for an ack before redelivering.
	// Default 60s.
	AckWait time.Duration
	// MaxDeliver caps deliveries per message; the last failed one is
	// dead-lettered. -1 means unlimited. Default 10.
	MaxDeliver int
	// BackOff is the nak delay by delivery count; the last entry repeats.
	// Default [2s, 10s, 30s, 1m, 5m]. The server-side BackOff (which governs
	// only redelivery after an ack timeout) is AckWait plus these steps,
	// trimmed below MaxDeliver as the server requires.
	BackOff []time.Duration
	// MaxAckPending caps unacknowledged messages across all replicas, and
	// with it the events held in memory. Default 64.
	MaxAckPending int
}

// LedgerConfig describes the key-value bucket of applied events.
type LedgerConfig struct {
	// Bucket name. Default "CRMSHARE_LEDGER".
	Bucket string
	// TTL is how long an applied event is remembered. Zero means the
	// stream's MaxAge.
	TTL time.Duration
}

// DeadLetterConfig describes where dead letters go.
type DeadLetterConfig struct {
	// Stream name. Default "CRM_EVENTS_DLQ".
	Stream string
	// Subject prefix: a dead letter is published to
	// <Subject>.<original subject>. Default "crm.dlq".
	Subject string
}

func (c *Config) setDefaults() {
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	defDur := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	def(&c.Stream.Name, "CRM_EVENTS")
	if len(c.Stream.Subjects) == 0 {
		c.Stream.Subjects = []string{"crm.events.>"}
	}
	defDur(&c.Stream.MaxAge, 336*time.Hour)
	defDur(&c.Stream.DuplicateWindow, 2*time.Minute)
	if c.Stream.Replicas == 0 {
		c.Stream.Replicas = 1
	}
	def(&c.Consumer.Durable, "crmshare")
	defDur(&c.Consumer.AckWait, 60*time.Second)
	if c.Consumer.MaxDeliver == 0 {
		c.Consumer.MaxDeliver = 10
	}
	if len(c.Consumer.BackOff) == 0 {
		c.Consumer.BackOff = []time.Duration{2 * time.Second, 10 * time.Second, 30 * time.Second, time.Minute, 5 * time.Minute}
	}
	if c.Consumer.MaxAckPending == 0 {
		c.Consumer.MaxAckPending = 64
	}
	def(&c.Ledger.Bucket, "CRMSHARE_LEDGER")
	defDur(&c.Ledger.TTL, c.Stream.MaxAge)
	def(&c.DeadLetter.Stream, "CRM_EVENTS_DLQ")
	def(&c.DeadLetter.Subject, "crm.dlq")
	if c.Concurrency == 0 {
		c.Concurrency = 16
	}
	defDur(&c.ProbeInterval, time.Second)
	defDur(&c.MaxProbeInterval, time.Minute)
	defDur(&c.HandlerTimeout, c.Consumer.AckWait)
	defDur(&c.ShutdownGrace, 25*time.Second)
	defDur(&c.WatchInterval, 15*time.Second)
}

// Validate reports every problem with c at once. It expects defaults to be
// filled in (New does that).
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.JS == nil {
		add("JS is required")
	}
	if c.Conn == nil {
		add("Conn is required")
	}
	if c.Handler == nil {
		add("Handler is required")
	}
	for _, n := range []struct{ field, v string }{
		{"Stream.Name", c.Stream.Name}, {"Consumer.Durable", c.Consumer.Durable},
		{"Ledger.Bucket", c.Ledger.Bucket}, {"DeadLetter.Stream", c.DeadLetter.Stream},
	} {
		if strings.ContainsAny(n.v, " \t\r\n.*>/\\") {
			add("%s %q: must not contain whitespace, '.', '*', '>', '/' or '\\'", n.field, n.v)
		}
	}
	if c.Stream.Name == c.DeadLetter.Stream {
		add("DeadLetter.Stream %q: must differ from Stream.Name", c.DeadLetter.Stream)
	}
	if s := c.DeadLetter.Subject; strings.ContainsAny(s, " \t\r\n*>") || strings.HasPrefix(s, ".") || strings.HasSuffix(s, ".") {
		add("DeadLetter.Subject %q: must be a plain subject prefix without wildcards", s)
	}
	for _, s := range c.Stream.Subjects {
		if s == "" || strings.ContainsAny(s, " \t\r\n") {
			add("Stream.Subjects: invalid subject %q", s)
		}
	}
	if c.Stream.MaxAge < 0 {
		add("Stream.MaxAge %v: must not be negative", c.Stream.MaxAge)
	}
	if c.Stream.DuplicateWindow < 0 || (c.Stream.MaxAge > 0 && c.Stream.DuplicateWindow > c.Stream.MaxAge) {
		add("Stream.DuplicateWindow %v: must be between 0 and MaxAge", c.Stream.DuplicateWindow)
	}
	if c.Stream.Replicas < 1 || c.Stream.Replicas > 5 {
		add("Stream.Replicas %d: must be 1 to 5", c.Stream.Replicas)
	}
	if c.Consumer.AckWait < time.Second {
		add("Consumer.AckWait %v: must be at least 1s", c.Consumer.AckWait)
	}
	if c.Consumer.MaxDeliver < -1 {
		add("Consumer.MaxDeliver %d: must be positive or -1 (unlimited)", c.Consumer.MaxDeliver)
	}
	for i, d := range c.Consumer.BackOff {
		if d <= 0 {
			add("Consumer.BackOff[%d] %v: must be positive", i, d)
		}
	}
	if c.Consumer.MaxAckPending < c.Concurrency {
		add("Consumer.MaxAckPending %d: must be at least Concurrency (%d)", c.Consumer.MaxAckPending, c.Concurrency)
	}
	if c.Concurrency < 1 {
		add("Concurrency %d: must be positive", c.Concurrency)
	}
	if c.Ledger.TTL < 0 {
		add("Ledger.TTL %v: must not be negative", c.Ledger.TTL)
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{
		{"ProbeInterval", c.ProbeInterval}, {"MaxProbeInterval", c.MaxProbeInterval},
		{"HandlerTimeout", c.HandlerTimeout}, {"ShutdownGrace", c.ShutdownGrace},
		{"WatchInterval", c.WatchInterval},
	} {
		if d.v < 0 {
			add("%s %v: must not be negative", d.field, d.v)
		}
	}
	if c.MaxProbeInterval < c.ProbeInterval {
		add("MaxProbeInterval %v: must be at least ProbeInterval (%v)", c.MaxProbeInterval, c.ProbeInterval)
	}
	return errors.Join(errs...)
}

// serverBackOff is the consumer-level BackOff sent to the server. The server
// uses it instead of AckWait for redelivery after an ack timeout (a crashed or
// stalled replica), so each step is AckWait plus the nak step: a live replica
// always gets at least AckWait. The server rejects more steps than MaxDeliver.
func (c *Config) serverBackOff() []time.Duration {
	n := len(c.Consumer.BackOff)
	if c.Consumer.MaxDeliver > 0 {
		n = min(n, c.Consumer.MaxDeliver-1)
	}
	if n <= 0 {
		return nil
	}
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = c.Consumer.AckWait + c.Consumer.BackOff[i]
	}
	return out
}
