package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/crmshare/crmshare/consumer"
)

// runPublish is `crmshare publish`: publish one CloudEvent to the stream, for
// demos and operators.
func runPublish(ctx context.Context, sio stdio, args []string) int {
	fs := newFlagSet("publish", sio)
	cfgPath := configFlag(fs, sio)
	eventFile := fs.String("event", "", "a whole CloudEvent as a JSON `file` (- for stdin); the flags below override its attributes")
	typ := fs.String("type", "", "event type, e.g. deal.assigned")
	source := fs.String("source", "", "event source, e.g. urn:acme:routing")
	subject := fs.String("subject", "", "event subject, e.g. Deals/4150868000002515001")
	id := fs.String("id", "", "event id (default: a new random id, or the event file's)")
	data := fs.String("data", "", "event data: JSON, or @file to read it from a file")
	mode := fs.String("mode", "structured", "content mode: structured or binary")
	natsSubject := fs.String("nats-subject", "", "NATS subject (default <ingress.subject_prefix>.<type>)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if !requireFlag(fs, "config", *cfgPath) {
		return exitUsage
	}
	fail := func(err error) int {
		fmt.Fprintf(sio.stderr, "crmshare publish: %v\n", err)
		return exitFail
	}
	m, err := parseMode(*mode)
	if err != nil {
		return fail(err)
	}
	ev := event.New()
	if *eventFile != "" {
		ev, err = readEventFile(*eventFile, sio.stdin)
		if err != nil {
			return fail(err)
		}
	}
	if *typ != "" {
		ev.SetType(*typ)
	}
	if *source != "" {
		ev.SetSource(*source)
	}
	if *subject != "" {
		ev.SetSubject(*subject)
	}
	if *id != "" {
		ev.SetID(*id)
	}
	if ev.ID() == "" {
		ev.SetID(newEventID())
	}
	if ev.Time().IsZero() {
		ev.SetTime(time.Now().UTC())
	}
	if *data != "" {
		raw := []byte(*data)
		if name, ok := strings.CutPrefix(*data, "@"); ok {
			if raw, err = os.ReadFile(name); err != nil {
				return fail(fmt.Errorf("read data: %w", err))
			}
		}
		if !json.Valid(raw) {
			return fail(errors.New("--data is not valid JSON"))
		}
		if err := ev.SetData(event.ApplicationJSON, json.RawMessage(raw)); err != nil {
			return fail(fmt.Errorf("set data: %w", err))
		}
	}
	if err := ev.Validate(); err != nil {
		return fail(fmt.Errorf("invalid event: %w", err))
	}

	cfg, err := LoadConfigFile(*cfgPath, sio.getenv)
	if err != nil {
		return fail(err)
	}
	s, done, err := startTool(ctx, cfg, sio, serviceOptions{NATSOnly: true, NoListeners: true})
	if err != nil {
		return fail(err)
	}
	defer done()
	to := *natsSubject
	if to == "" {
		to = cfg.Ingress.SubjectPrefix + "." + ev.Type()
	}
	ack, err := s.publish(ctx, to, ev, m)
	if err != nil {
		return fail(err)
	}
	fmt.Fprintf(sio.stdout, "published %s (id %s) to %s: stream %s sequence %d%s\n",
		ev.Type(), ev.ID(), to, ack.Stream, ack.Sequence, dupNote(ack.Duplicate))
	return exitOK
}

func dupNote(dup bool) string {
	if dup {
		return " (duplicate: already stored within the duplicate window)"
	}
	return ""
}

func parseMode(s string) (consumer.Mode, error) {
	switch s {
	case "structured":
		return consumer.ModeStructured, nil
	case "binary":
		return consumer.ModeBinary, nil
	}
	return 0, fmt.Errorf("--mode %q: want structured or binary", s)
}

// publish publishes ev inside a producer span, so the event carries this
// trace's context (traceparent) to the consumer.
func (s *service) publish(ctx context.Context, subject string, ev event.Event, m consumer.Mode) (*publishAck, error) {
	// An event that carries its producer's trace (the CloudEvents tracing
	// extension) is published inside that trace.
	if tp, ok := ev.Extensions()["traceparent"].(string); ok {
		carrier := propagation.MapCarrier{"traceparent": tp}
		if ts, ok := ev.Extensions()["tracestate"].(string); ok {
			carrier["tracestate"] = ts
		}
		ctx = s.tel.Propagator().Extract(ctx, carrier)
	}
	ctx, span := s.tel.TracerProvider().Tracer("github.com/crmshare/crmshare/cmd/crmshare").Start(ctx,
		"publish "+subject, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.operation.type", "send"),
			attribute.String("messaging.destination.name", subject),
			attribute.String("messaging.message.id", ev.ID()),
			attribute.String("cloudevents.event_type", ev.Type()),
			attribute.String("cloudevents.event_source", ev.Source()),
		))
	defer span.End()
	ack, err := consumer.Publish(ctx, s.js, subject, ev, m)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		return nil, fmt.Errorf("publish %s to %s: %w", ev.ID(), subject, err)
	}
	return &publishAck{Stream: ack.Stream, Sequence: ack.Sequence, Duplicate: ack.Duplicate}, nil
}

// publishAck is what the stream said about a publish.
type publishAck struct {
	Stream    string
	Sequence  uint64
	Duplicate bool
}

// publishFiles publishes the CloudEvents in files and directories (dev mode),
// a directory's events in the order of their time attribute.
func (s *service) publishFiles(ctx context.Context, paths []string) error {
	var events []event.Event
	for _, p := range paths {
		evs, err := readEvents(p)
		if err != nil {
			return err
		}
		events = append(events, evs...)
	}
	for _, ev := range events {
		subject := s.cfg.Ingress.SubjectPrefix + "." + ev.Type()
		ack, err := s.publish(ctx, subject, ev, consumer.ModeStructured)
		if err != nil {
			return err
		}
		s.logger.InfoContext(ctx, "dev: published example event", "event_id", ev.ID(), "type", ev.Type(),
			"subject", subject, "stream_seq", ack.Sequence, "duplicate", ack.Duplicate)
	}
	return nil
}

// readEvents reads one event file, or every *.json event of a directory sorted
// by event time.
func readEvents(path string) ([]event.Event, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	if !st.IsDir() {
		ev, err := readEventFile(path, nil)
		if err != nil {
			return nil, err
		}
		return []event.Event{ev}, nil
	}
	names, err := filepath.Glob(filepath.Join(path, "*.json"))
	if err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	var evs []event.Event
	for _, name := range names {
		ev, err := readEventFile(name, nil)
		if err != nil {
			return nil, err
		}
		evs = append(evs, ev)
	}
	slices.SortStableFunc(evs, func(a, b event.Event) int { return a.Time().Compare(b.Time()) })
	return evs, nil
}

// newEventID returns a random version-4 UUID.
func newEventID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
