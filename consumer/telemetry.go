package consumer

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

const instrumentationName = "github.com/crmshare/crmshare/consumer"

// Attribute keys of our own, beside the semantic conventions.
const (
	attrStreamSeq  = attribute.Key("messaging.nats.stream.sequence")
	attrDelivered  = attribute.Key("messaging.nats.message.delivered")
	attrStreamName = attribute.Key("messaging.nats.stream.name")
	attrDecision   = attribute.Key("crmshare.decision")
	attrDelay      = attribute.Key("crmshare.delay_ms")
	attrDLQClass   = attribute.Key("crmshare.dead_letter.reason")
)

// instruments are the consumer's metrics. Names map to Prometheus
// crmshare_events_total, crmshare_event_duration_seconds, and so on.
type instruments struct {
	events   metric.Int64Counter
	duration metric.Float64Histogram
	// inflight counts events admitted and not yet settled; a callback
	// reports it at collection, so admitting and settling cost an atomic add
	// instead of two measurements per event.
	inflight    atomic.Int64
	redelivered metric.Int64Counter
	deadLetters metric.Int64Counter
	ledgerHits  metric.Int64Counter
	pendingReg  metric.Registration

	eventAttrs    attrCache[eventLabels]
	decisionAttrs attrCache[decision]
}

// eventLabels are the labels of crmshare.events.
type eventLabels struct {
	typ      string
	decision decision
}

func newInstruments(mp metric.MeterProvider, pending *atomic.Int64) (*instruments, error) {
	if mp == nil {
		mp = metricnoop.NewMeterProvider()
	}
	m := mp.Meter(instrumentationName)
	var (
		in   instruments
		errs []error
		err  error
	)
	in.events, err = m.Int64Counter("crmshare.events",
		metric.WithDescription("Events settled, by CloudEvent type and decision."), metric.WithUnit("{event}"))
	errs = append(errs, err)
	in.duration, err = m.Float64Histogram("crmshare.event.duration",
		metric.WithDescription("Time from the event's arrival in the stream to its settlement."), metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600))
	errs = append(errs, err)
	inflight, err := m.Int64ObservableUpDownCounter("crmshare.inflight",
		metric.WithDescription("Events admitted and not yet settled."), metric.WithUnit("{event}"))
	errs = append(errs, err)
	in.redelivered, err = m.Int64Counter("crmshare.redeliveries",
		metric.WithDescription("Deliveries of an event after its first."), metric.WithUnit("{delivery}"))
	errs = append(errs, err)
	in.deadLetters, err = m.Int64Counter("crmshare.dead_letters",
		metric.WithDescription("Events dead-lettered, by reason class."), metric.WithUnit("{event}"))
	errs = append(errs, err)
	in.ledgerHits, err = m.Int64Counter("crmshare.ledger.hits",
		metric.WithDescription("Deliveries skipped because the ledger lists the event as applied."), metric.WithUnit("{event}"))
	errs = append(errs, err)
	gauge, err := m.Int64ObservableGauge("crmshare.consumer.pending",
		metric.WithDescription("Messages in the stream not yet delivered to the consumer (sampled)."), metric.WithUnit("{message}"))
	errs = append(errs, err)
	if errors.Join(errs...) == nil {
		in.pendingReg, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
			o.ObserveInt64(gauge, pending.Load())
			o.ObserveInt64(inflight, in.inflight.Load())
			return nil
		}, gauge, inflight)
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("create metrics: %w", err)
	}
	return &in, nil
}

func tracerFrom(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		tp = tracenoop.NewTracerProvider()
	}
	return tp.Tracer(instrumentationName)
}
