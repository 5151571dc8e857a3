package consumer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func TestSuccessAcks(t *testing.T) {
	tj := startJS(t)
	var got calls
	r := startConsumer(t, tj.config(HandlerFunc(func(ctx context.Context, ev event.Event) error {
		got.add(ctx, ev)
		return nil
	})))
	for i := range 3 {
		mode := ModeStructured
		if i%2 == 1 {
			mode = ModeBinary
		}
		tj.publish(t, "crm.events.deal.assigned", newEvent(t, eventID(i), "deal.assigned", "D"+strconv.Itoa(i)), mode)
	}
	waitFor(t, "3 acks", tj.settledAll(t, 3))

	info := tj.consumerInfo(t, "CRM_EVENTS", "crmshare")
	if info.NumRedelivered != 0 {
		t.Errorf("NumRedelivered = %d, want 0", info.NumRedelivered)
	}
	var ids []string
	for _, c := range got.list() {
		ids = append(ids, c.id)
		if c.delivered != 1 {
			t.Errorf("event %s handled on delivery %d, want 1", c.id, c.delivered)
		}
	}
	slices.Sort(ids)
	if diff := cmp.Diff([]string{eventID(0), eventID(1), eventID(2)}, ids); diff != "" {
		t.Errorf("handled ids mismatch (-want +got):\n%s", diff)
	}
	if n := len(tj.deadLetters(t)); n != 0 {
		t.Errorf("dead letters = %d, want 0", n)
	}
	kv, err := tj.js.KeyValue(t.Context(), "CRMSHARE_LEDGER")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Get(t.Context(), EventKey(newEvent(t, eventID(1), "deal.assigned", "D1"))); err != nil {
		t.Errorf("ledger entry for %s: %v", eventID(1), err)
	}
	if err := r.c.Ready(); err != nil {
		t.Errorf("Ready() = %v, want nil", err)
	}
	if err := r.stop(t); err != nil {
		t.Errorf("Run returned %v, want nil", err)
	}
}

func TestPermanentErrorDeadLetters(t *testing.T) {
	tj := startJS(t)
	var got calls
	startConsumer(t, tj.config(HandlerFunc(func(ctx context.Context, ev event.Event) error {
		got.add(ctx, ev)
		return fmt.Errorf("apply: %w", &testError{permanent: true, code: "LIMIT_EXCEEDED", rule: "share-deal"})
	})))
	ev := newEvent(t, "evt-perm", "deal.assigned", "D9")
	msg, err := Encode("crm.events.deal.assigned", ev, ModeBinary)
	if err != nil {
		t.Fatal(err)
	}
	msg.Header.Set("x-upstream", "billing")
	msg.Header.Set("Nats-Msg-Id", "upstream-42")
	original := slices.Clone(msg.Data)
	if _, err := tj.js.PublishMsg(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the message to be terminated", tj.settledAll(t, 1))

	dl := tj.deadLetters(t)
	if len(dl) != 1 {
		t.Fatalf("dead letters = %d, want 1", len(dl))
	}
	d := dl[0]
	if got, want := d.Subject, "crm.dlq.crm.events.deal.assigned"; got != want {
		t.Errorf("dead letter subject = %q, want %q", got, want)
	}
	if !slices.Equal(d.Data, original) {
		t.Errorf("dead letter body = %q, want the original %q", d.Data, original)
	}
	wantHeaders := map[string]string{
		"ce-id":                "evt-perm",
		"ce-type":              "deal.assigned",
		"x-upstream":           "billing",
		HeaderZohoCode:         "LIMIT_EXCEEDED",
		HeaderRule:             "share-deal",
		HeaderOriginalSubject:  "crm.events.deal.assigned",
		HeaderOriginalStream:   "CRM_EVENTS",
		HeaderOriginalSequence: "1",
		HeaderOriginalMsgID:    "upstream-42",
		HeaderDeliveries:       "1",
		jetstream.MsgIDHeader:  "dlq-CRM_EVENTS-1",
	}
	for k, want := range wantHeaders {
		if got := d.Header.Get(k); got != want {
			t.Errorf("dead letter header %s = %q, want %q", k, got, want)
		}
	}
	if e := d.Header.Get(HeaderError); !strings.HasPrefix(e, "permanent failure: apply: scripted failure") {
		t.Errorf("dead letter %s = %q, want the reason in words", HeaderError, e)
	}
	if at, err := time.Parse(time.RFC3339, d.Header.Get(HeaderFailedAt)); err != nil || time.Since(at) > time.Minute {
		t.Errorf("dead letter %s = %q (%v), want a recent RFC 3339 time", HeaderFailedAt, d.Header.Get(HeaderFailedAt), err)
	}
	if n := got.count(); n != 1 {
		t.Errorf("handler calls = %d, want 1 (a permanent failure is not retried)", n)
	}
	if info := tj.consumerInfo(t, "CRM_EVENTS", "crmshare"); info.NumRedelivered != 0 {
		t.Errorf("NumRedelivered = %d, want 0", info.NumRedelivered)
	}
}

func TestTransientErrorRetriedWithBackoff(t *testing.T) {
	tj := startJS(t)
	var got calls
	cfg := tj.config(HandlerFunc(func(ctx context.Context, ev event.Event) error {
		got.add(ctx, ev)
		if d, _ := DeliveryFrom(ctx); d.NumDelivered < 3 {
			return &testError{code: "INTERNAL_ERROR"}
		}
		return nil
	}))
	cfg.Consumer.BackOff = []time.Duration{100 * time.Millisecond, 200 * time.Millisecond}
	startConsumer(t, cfg)
	tj.publish(t, "crm.events.deal.assigned", newEvent(t, "evt-flaky", "deal.assigned", "D1"), ModeStructured)
	waitFor(t, "the message to be acked", tj.settledAll(t, 1))

	calls := got.list()
	var delivered []uint64
	for _, c := range calls {
		delivered = append(delivered, c.delivered)
	}
	if diff := cmp.Diff([]uint64{1, 2, 3}, delivered); diff != "" {
		t.Fatalf("deliveries seen by the handler (-want +got):\n%s", diff)
	}
	// The server must not redeliver before the configured nak delay.
	for i, min := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond} {
		if gap := calls[i+1].at.Sub(calls[i].at); gap < min {
			t.Errorf("delivery %d came %v after delivery %d, want at least the backoff %v", i+2, gap, i+1, min)
		}
	}
	if n := len(tj.deadLetters(t)); n != 0 {
		t.Errorf("dead letters = %d, want 0", n)
	}
}

func TestNeverHealingErrorDeadLettersAfterMaxDeliver(t *testing.T) {
	tj := startJS(t)
	var got calls
	cfg := tj.config(HandlerFunc(func(ctx context.Context, ev event.Event) error {
		got.add(ctx, ev)
		return &testError{throttled: true, code: "TOO_MANY_REQUESTS"}
	}))
	cfg.Consumer.MaxDeliver = 3
	startConsumer(t, cfg)
	tj.publish(t, "crm.events.deal.assigned", newEvent(t, "evt-doomed", "deal.assigned", "D1"), ModeBinary)
	waitFor(t, "the message to be terminated", tj.settledAll(t, 1))

	var delivered []uint64
	for _, c := range got.list() {
		delivered = append(delivered, c.delivered)
	}
	if diff := cmp.Diff([]uint64{1, 2, 3}, delivered); diff != "" {
		t.Errorf("deliveries seen by the handler (-want +got):\n%s", diff)
	}
	dl := tj.deadLetters(t)
	if len(dl) != 1 {
		t.Fatalf("dead letters = %d, want 1", len(dl))
	}
	if got, want := dl[0].Header.Get(HeaderDeliveries), "3"; got != want {
		t.Errorf("%s = %q, want %q", HeaderDeliveries, got, want)
	}
	if e := dl[0].Header.Get(HeaderError); !strings.HasPrefix(e, "retries exhausted") {
		t.Errorf("%s = %q, want it to start with %q", HeaderError, e, "retries exhausted")
	}
}

func TestMalformedMessageDeadLetteredOnFirstDelivery(t *testing.T) {
	tj := startJS(t)
	var got calls
	startConsumer(t, tj.config(HandlerFunc(func(ctx context.Context, ev event.Event) error {
		got.add(ctx, ev)
		return nil
	})))
	body := []byte("this is not a cloudevent")
	if _, err := tj.js.PublishMsg(t.Context(), &nats.Msg{
		Subject: "crm.events.junk", Data: body, Header: nats.Header{"ce-id": {"x"}},
	}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the message to be terminated", tj.settledAll(t, 1))
	dl := tj.deadLetters(t)
	if len(dl) != 1 {
		t.Fatalf("dead letters = %d, want 1", len(dl))
	}
	if !slices.Equal(dl[0].Data, body) {
		t.Errorf("dead letter body = %q, want %q", dl[0].Data, body)
	}
	if got, want := dl[0].Header.Get(HeaderDeliveries), "1"; got != want {
		t.Errorf("%s = %q, want %q", HeaderDeliveries, got, want)
	}
	if got, want := dl[0].Header.Get(HeaderZohoCode), ""; got != want {
		t.Errorf("%s = %q, want %q", HeaderZohoCode, got, want)
	}
	if e := dl[0].Header.Get(HeaderError); !strings.HasPrefix(e, "undecodable cloudevent: decode binary cloudevent") {
		t.Errorf("%s = %q, want an undecodable-event reason", HeaderError, e)
	}
	if n := got.count(); n != 0 {
		t.Errorf("handler calls = %d, want 0", n)
	}
}

func TestSuspendPausesUntilProbeSucceeds(t *testing.T) {
	tj := startJS(t)
	var broken atomic.Bool
	broken.Store(true)
	var probes atomic.Int64
	handled := make(map[string]int)
	var mu sync.Mutex
	cfg := tj.config(HandlerFunc(func(ctx context.Context, ev event.Event) error {
		if broken.Load() {
			return fmt.Errorf("token: %w", &testError{suspend: true, permanent: true, code: "invalid_client"})
		}
		mu.Lock()
		handled[ev.ID()]++
		mu.Unlock()
		return nil
	}))
	cfg.Probe = func(ctx context.Context) error {
		probes.Add(1)
		if broken.Load() {
			return errors.New("credentials still rejected")
		}
		return nil
	}
	r := startConsumer(t, cfg)
	const n = 6
	for i := range n {
		tj.publish(t, "crm.events.deal.assigned", newEvent(t, eventID(i), "deal.assigned", "D"+strconv.Itoa(i)), ModeBinary)
	}
	waitFor(t, "the consumer to suspend", func() bool { return errors.Is(r.c.Ready(), ErrSuspended) })
	waitFor(t, "a few failed probes", func() bool { return probes.Load() >= 3 })
	if n := len(tj.deadLetters(t)); n != 0 {
		t.Fatalf("dead letters while suspended = %d, want 0", n)
	}
	if err := r.c.Ready(); !errors.Is(err, ErrSuspended) {
		t.Fatalf("Ready() = %v while the probe fails, want ErrSuspended", err)
	}

	broken.Store(false)
	waitFor(t, "every event to be handled after resuming", tj.settledAll(t, n))
	if err := r.c.Ready(); err != nil {
		t.Errorf("Ready() = %v after resuming, want nil", err)
	}
	want := make(map[string]int)
	for i := range n {
		want[eventID(i)] = 1
	}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff(want, handled); diff != "" {
		t.Errorf("successful handler calls per event (-want +got):\n%s", diff)
	}
	if n := len(tj.deadLetters(t)); n != 0 {
		t.Errorf("dead letters = %d, want 0", n)
	}
}

func TestPerKeyOrderWithParallelKeys(t *testing.T) {
	tj := startJS(t)
	const (
		keys   = 4
		events = 80
	)
	var (
		mu        sync.Mutex
		seen      = make(map[string][]int) // key -> event numbers in handling order
		inKey     = make(map[string]int)   // key -> handlers running now
		overlap   []string
		running   int
		maxRun    int
		arrived   = make(map[string]bool)
		barrier   = make(chan struct{})
		parallelA atomic.Bool
	)
	keysOf := func(ev event.Event) []string {
		n, _ := strconv.Atoi(strings.TrimPrefix(ev.ID(), "evt-"))
		k := []string{fmt.Sprintf("Deals/%d", n%keys)}
		if n%10 == 9 { // some events touch two records
			k = append(k, fmt.Sprintf("Deals/%d", (n+1)%keys))
		}
		return k
	}
	h := keyedHandler{
		keys: keysOf,
		HandlerFunc: func(ctx context.Context, ev event.Event) error {
			n, _ := strconv.Atoi(strings.TrimPrefix(ev.ID(), "evt-"))
			ks := keysOf(ev)
			mu.Lock()
			running++
			maxRun = max(maxRun, running)
			for _, k := range ks {
				inKey[k]++
				if inKey[k] > 1 {
					overlap = append(overlap, fmt.Sprintf("%s at event %d", k, n))
				}
				seen[k] = append(seen[k], n)
			}
			first := len(arrived) < keys && !arrived[ks[0]]
			arrived[ks[0]] = true
			if len(arrived) == keys && first {
				close(barrier)
			}
			mu.Unlock()
			if first {
				// The first event of each key waits for the other keys' first
				// events: they can only arrive if keys run in parallel.
				select {
				case <-barrier:
					parallelA.Store(true)
				case <-time.After(5 * time.Second):
				}
			}
			mu.Lock()
			running--
			for _, k := range ks {
				inKey[k]--
			}
			mu.Unlock()
			return nil
		},
	}
	cfg := tj.config(h)
	cfg.Concurrency = 16
	startConsumer(t, cfg)
	for i := range events {
		tj.publish(t, "crm.events.deal.updated", newEvent(t, eventID(i), "deal.updated", "x"), ModeBinary)
	}
	waitFor(t, "every event to be acked", tj.settledAll(t, events))

	mu.Lock()
	defer mu.Unlock()
	if len(overlap) > 0 {
		t.Errorf("events of one key ran at the same time: %v", overlap)
	}
	for k, ns := range seen {
		if !slices.IsSorted(ns) {
			t.Errorf("key %s handled out of stream order: %v", k, ns)
		}
	}
	total := 0
	for i := range events {
		total += len(keysOf(newEvent(t, eventID(i), "t", "x")))
	}
	got := 0
	for _, ns := range seen {
		got += len(ns)
	}
	if got != total {
		t.Errorf("handled %d key visits, want %d", got, total)
	}
	if !parallelA.Load() || maxRun < keys {
		t.Errorf("different keys did not run in parallel: barrier passed %v, max running %d, want >= %d", parallelA.Load(), maxRun, keys)
	}
}

func TestLedgerSkipsRepublishedEvent(t *testing.T) {
	tj := startJS(t)
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	var got calls
	cfg := tj.config(HandlerFunc(func(ctx context.Context, ev event.Event) error {
		got.add(ctx, ev)
		return nil
	}))
	cfg.MeterProvider = mp
	startConsumer(t, cfg)

	ev := newEvent(t, "evt-once", "deal.assigned", "D1")
	tj.publish(t, "crm.events.deal.assigned", ev, ModeStructured)
	waitFor(t, "the first copy to be acked", tj.settledAll(t, 1))
	// The same CloudEvent again, under another Nats-Msg-Id, so the stream
	// stores it a second time.
	msg, err := Encode("crm.events.deal.assigned", ev, ModeBinary)
	if err != nil {
		t.Fatal(err)
	}
	ack, err := tj.js.PublishMsg(t.Context(), msg, jetstream.WithMsgID("another-id"))
	if err != nil {
		t.Fatal(err)
	}
	if ack.Duplicate {
		t.Fatal("second publish was dropped as a duplicate; the test needs it stored")
	}
	waitFor(t, "the second copy to be acked", tj.settledAll(t, 2))
	if n := got.count(); n != 1 {
		t.Errorf("handler calls = %d, want 1", n)
	}
	if hits := counterSum(t, reader, "crmshare.ledger.hits"); hits != 1 {
		t.Errorf("crmshare.ledger.hits = %d, want 1", hits)
	}
	// The counter is recorded just after the ack the server reports.
	waitFor(t, "crmshare.events{decision=skip_duplicate} to reach 1", func() bool {
		return counterSum(t, reader, "crmshare.events", attribute.String("decision", "skip_duplicate")) == 1
	})
	if acks := counterSum(t, reader, "crmshare.events", attribute.String("decision", "ack")); acks != 1 {
		t.Errorf("crmshare.events{decision=ack} = %d, want 1", acks)
	}
}

func TestForceHandlesLedgeredEvent(t *testing.T) {
	tj := startJS(t)
	var got calls
	h := HandlerFunc(func(ctx context.Context, ev event.Event) error {
		got.add(ctx, ev)
		return nil
	})
	cfg := tj.config(h)
	cfg.Force = true
	startConsumer(t, cfg)
	ev := newEvent(t, "evt-replayed", "deal.assigned", "D1")
	tj.publish(t, "crm.events.deal.assigned", ev, ModeStructured)
	waitFor(t, "the first copy to be acked", tj.settledAll(t, 1))
	msg, err := Encode("crm.events.deal.assigned", ev, ModeStructured)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tj.js.PublishMsg(t.Context(), msg, jetstream.WithMsgID("replay")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the second copy to be acked", tj.settledAll(t, 2))
	if n := got.count(); n != 2 {
		t.Errorf("handler calls with Force = %d, want 2", n)
	}
}

func TestDuplicatePublishStoredOnce(t *testing.T) {
	tj := startJS(t)
	var got calls
	startConsumer(t, tj.config(HandlerFunc(func(ctx context.Context, ev event.Event) error {
		got.add(ctx, ev)
		return nil
	})))
	ev := newEvent(t, "evt-dup", "deal.assigned", "D1")
	first := tj.publish(t, "crm.events.deal.assigned", ev, ModeBinary)
	second := tj.publish(t, "crm.events.deal.assigned", ev, ModeStructured)
	if first.Duplicate || !second.Duplicate || second.Sequence != first.Sequence {
		t.Errorf("pub acks = %+v then %+v, want the second to be a duplicate of the first", *first, *second)
	}
	waitFor(t, "the message to be acked", tj.settledAll(t, 1))
	st, err := tj.js.Stream(t.Context(), "CRM_EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Errorf("stream holds %d messages, want 1", info.State.Msgs)
	}
	if n := got.count(); n != 1 {
		t.Errorf("handler calls = %d, want 1", n)
	}
}

func TestGracefulShutdownLosesNothing(t *testing.T) {
	tj := startJS(t)
	const n = 6
	var (
		inFlight = make(chan string, n)
		release  = make(chan struct{})
		mu       sync.Mutex
		acked    = make(map[string]int)
	)
	cfg := tj.config(HandlerFunc(func(ctx context.Context, ev event.Event) error {
		inFlight <- ev.ID()
		switch ev.ID() {
		case eventID(0): // finishes within the grace period
			<-release
		default: // never finishes by itself
			<-ctx.Done()
			return ctx.Err()
		}
		mu.Lock()
		acked[ev.ID()]++
		mu.Unlock()
		return nil
	}))
	cfg.Concurrency = 2
	cfg.ShutdownGrace = 300 * time.Millisecond
	r := startConsumer(t, cfg)
	for i := range n {
		tj.publish(t, "crm.events.deal.assigned", newEvent(t, eventID(i), "deal.assigned", "D"), ModeBinary)
	}
	started := map[string]bool{<-inFlight: true, <-inFlight: true}
	if !started[eventID(0)] || !started[eventID(1)] {
		t.Fatalf("first in flight = %v, want %s and %s", started, eventID(0), eventID(1))
	}
	r.cancel()
	close(release)
	if err := r.stop(t); err != nil {
		t.Fatalf("Run returned %v, want nil", err)
	}

	info := tj.consumerInfo(t, "CRM_EVENTS", "crmshare")
	if info.AckFloor.Stream != 1 {
		t.Errorf("ack floor after shutdown = %d, want 1 (only the event that finished in the grace period)", info.AckFloor.Stream)
	}

	// A new replica takes over and handles everything else exactly once.
	var got calls
	cfg2 := tj.config(HandlerFunc(func(ctx context.Context, ev event.Event) error {
		got.add(ctx, ev)
		mu.Lock()
		acked[ev.ID()]++
		mu.Unlock()
		return nil
	}))
	startConsumer(t, cfg2)
	waitFor(t, "every event to be acked", tj.settledAll(t, n))
	want := make(map[string]int)
	for i := range n {
		want[eventID(i)] = 1
	}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff(want, acked); diff != "" {
		t.Errorf("successful handling per event (-want +got):\n%s", diff)
	}
	for _, c := range got.list() {
		if c.id == eventID(0) {
			t.Errorf("event %s handled again after it was acked", c.id)
		}
	}
}

func TestTraceParent(t *testing.T) {
	const (
		traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
		spanID  = "00f067aa0ba902b7"
		tp      = "00-" + traceID + "-" + spanID + "-01"
	)
	tests := []struct {
		name string
		msg  func(t *testing.T) *nats.Msg
	}{
		{name: "lowercase traceparent header", msg: func(t *testing.T) *nats.Msg {
			m, err := Encode("crm.events.deal.assigned", newEvent(t, "evt-trace", "deal.assigned", "D1"), ModeBinary)
			if err != nil {
				t.Fatal(err)
			}
			m.Header["traceparent"] = []string{tp}
			return m
		}},
		{name: "canonical Traceparent header", msg: func(t *testing.T) *nats.Msg {
			m, err := Encode("crm.events.deal.assigned", newEvent(t, "evt-trace", "deal.assigned", "D1"), ModeStructured)
			if err != nil {
				t.Fatal(err)
			}
			m.Header["Traceparent"] = []string{tp}
			return m
		}},
		{name: "cloudevents tracing extension", msg: func(t *testing.T) *nats.Msg {
			ev := newEvent(t, "evt-trace", "deal.assigned", "D1")
			ev.SetExtension("traceparent", tp)
			m, err := Encode("crm.events.deal.assigned", ev, ModeStructured)
			if err != nil {
				t.Fatal(err)
			}
			return m
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tj := startJS(t)
			rec := tracetest.NewSpanRecorder()
			provider := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
			t.Cleanup(func() { _ = provider.Shutdown(context.Background()) })
			handlerSpan := make(chan trace.SpanContext, 1)
			cfg := tj.config(HandlerFunc(func(ctx context.Context, ev event.Event) error {
				handlerSpan <- trace.SpanContextFromContext(ctx)
				return nil
			}))
			cfg.TracerProvider = provider
			startConsumer(t, cfg)
			if _, err := tj.js.PublishMsg(t.Context(), tt.msg(t)); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the process span to end", func() bool { return len(rec.Ended()) == 1 })
			s := rec.Ended()[0]
			if got, want := s.Name(), "process crm.events.deal.assigned"; got != want {
				t.Errorf("span name = %q, want %q", got, want)
			}
			if got, want := s.SpanKind(), trace.SpanKindConsumer; got != want {
				t.Errorf("span kind = %v, want %v", got, want)
			}
			if got, want := s.Parent().TraceID().String(), traceID; got != want {
				t.Errorf("parent trace id = %s, want %s", got, want)
			}
			if got, want := s.Parent().SpanID().String(), spanID; got != want {
				t.Errorf("parent span id = %s, want %s", got, want)
			}
			if got, want := (<-handlerSpan).SpanID(), s.SpanContext().SpanID(); got != want {
				t.Errorf("handler ctx span = %s, want the process span %s", got, want)
			}
			attrs := make(map[string]string)
			for _, kv := range s.Attributes() {
				attrs[string(kv.Key)] = kv.Value.Emit()
			}
			wantAttrs := map[string]string{
				"messaging.system":                 "nats",
				"messaging.operation.type":         "process",
				"messaging.destination.name":       "crm.events.deal.assigned",
				"messaging.consumer.group.name":    "crmshare",
				"messaging.message.id":             "evt-trace",
				"messaging.nats.stream.sequence":   "1",
				"messaging.nats.message.delivered": "1",
				"cloudevents.event_id":             "evt-trace",
				"cloudevents.event_type":           "deal.assigned",
				"cloudevents.event_source":         "/test/crm",
				"cloudevents.event_subject":        "D1",
				"crmshare.decision":                "ack",
			}
			for k, want := range wantAttrs {
				if got := attrs[k]; got != want {
					t.Errorf("span attribute %s = %q, want %q", k, got, want)
				}
			}
		})
	}
}

func TestConsumerRecreatedAfterDelete(t *testing.T) {
	tj := startJS(t)
	var got calls
	r := startConsumer(t, tj.config(HandlerFunc(func(ctx context.Context, ev event.Event) error {
		got.add(ctx, ev)
		return nil
	})))
	tj.publish(t, "crm.events.deal.assigned", newEvent(t, eventID(0), "deal.assigned", "D"), ModeBinary)
	waitFor(t, "the first event", func() bool { return got.count() == 1 })
	if err := tj.js.DeleteConsumer(t.Context(), "CRM_EVENTS", "crmshare"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the consumer to be recreated", func() bool {
		_, err := tj.js.Consumer(t.Context(), "CRM_EVENTS", "crmshare")
		return err == nil && r.c.Ready() == nil
	})
	tj.publish(t, "crm.events.deal.assigned", newEvent(t, eventID(1), "deal.assigned", "D"), ModeBinary)
	waitFor(t, "the event published after the delete", func() bool {
		return slices.ContainsFunc(got.list(), func(c call) bool { return c.id == eventID(1) })
	})
}

func TestSetupBindOnly(t *testing.T) {
	tj := startJS(t)
	h := HandlerFunc(func(context.Context, event.Event) error { return nil })
	cfg := tj.config(h)
	cfg.BindOnly = true
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Setup(t.Context()); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("Setup with BindOnly on an empty server = %v, want ErrStreamNotFound", err)
	}
	if err := c.Ready(); !errors.Is(err, ErrNotBound) {
		t.Errorf("Ready() before Setup = %v, want ErrNotBound", err)
	}
	if err := c.Run(t.Context()); err == nil {
		t.Error("Run before Setup returned nil, want an error")
	}

	created, err := New(tj.config(h))
	if err != nil {
		t.Fatal(err)
	}
	if err := created.Setup(t.Context()); err != nil {
		t.Fatalf("Setup creating everything: %v", err)
	}
	if err := created.Setup(t.Context()); err != nil {
		t.Fatalf("Setup again (update): %v", err)
	}
	if err := c.Setup(t.Context()); err != nil {
		t.Errorf("Setup with BindOnly after creation: %v", err)
	}
	info := tj.consumerInfo(t, "CRM_EVENTS", "crmshare")
	if got, want := info.Config.AckPolicy, jetstream.AckExplicitPolicy; got != want {
		t.Errorf("ack policy = %v, want %v", got, want)
	}
	if got, want := info.Config.BackOff, []time.Duration{5*time.Second + 50*time.Millisecond, 5*time.Second + 100*time.Millisecond}; !slices.Equal(got, want) {
		t.Errorf("server backoff = %v, want %v", got, want)
	}
	st, err := tj.js.Stream(t.Context(), "CRM_EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	if got := st.CachedInfo().Config.Retention; got != jetstream.LimitsPolicy {
		t.Errorf("stream retention = %v, want limits", got)
	}
}

// counterSum adds up an Int64 counter's points that carry all of attrs.
func counterSum(t *testing.T, r *sdkmetric.ManualReader, name string, attrs ...attribute.KeyValue) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(t.Context(), &rm); err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			sum, ok := m.Data.(metricdata.Sum[int64])
			if !ok {
				t.Fatalf("metric %s is %T, want a Sum[int64]", name, m.Data)
			}
			for _, dp := range sum.DataPoints {
				match := true
				for _, a := range attrs {
					if v, ok := dp.Attributes.Value(a.Key); !ok || v != a.Value {
						match = false
					}
				}
				if match {
					total += dp.Value
				}
			}
		}
	}
	return total
}

func TestInProgressKeepsLongWorkFromRedelivery(t *testing.T) {
	if testing.Short() {
		t.Skip("takes a few seconds of simulated slow work")
	}
	tj := startJS(t)
	var got calls
	h := keyedHandler{
		keys: func(event.Event) []string { return []string{"Deals/1"} },
		HandlerFunc: func(ctx context.Context, ev event.Event) error {
			got.add(ctx, ev)
			// Simulated slow work, longer than AckWait. The second event
			// waits in its lane meanwhile, also past AckWait.
			select {
			case <-time.After(1500 * time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
			return nil
		},
	}
	cfg := tj.config(h)
	cfg.Consumer.AckWait = time.Second
	cfg.Consumer.BackOff = []time.Duration{10 * time.Millisecond}
	cfg.HandlerTimeout = 10 * time.Second
	startConsumer(t, cfg)
	tj.publish(t, "crm.events.deal.assigned", newEvent(t, eventID(0), "deal.assigned", "D1"), ModeBinary)
	tj.publish(t, "crm.events.deal.assigned", newEvent(t, eventID(1), "deal.assigned", "D1"), ModeBinary)
	waitFor(t, "both events to be acked", tj.settledAll(t, 2))

	var seen []call
	for _, c := range got.list() {
		seen = append(seen, call{id: c.id, delivered: c.delivered})
	}
	want := []call{{id: eventID(0), delivered: 1}, {id: eventID(1), delivered: 1}}
	if diff := cmp.Diff(want, seen, cmp.AllowUnexported(call{})); diff != "" {
		t.Errorf("handler calls (-want +got):\n%s", diff)
	}
	// Every delivery, redeliveries included, takes a consumer sequence.
	if info := tj.consumerInfo(t, "CRM_EVENTS", "crmshare"); info.Delivered.Consumer != 2 {
		t.Errorf("deliveries = %d, want 2 (no redelivery)", info.Delivered.Consumer)
	}
}

func TestDeadLetterPublishFailureNaks(t *testing.T) {
	tj := startJS(t)
	var got calls
	cfg := tj.config(HandlerFunc(func(ctx context.Context, ev event.Event) error {
		got.add(ctx, ev)
		return &testError{permanent: true, code: "INVALID_DATA"}
	}))
	cfg.Consumer.MaxDeliver = 20
	cfg.Consumer.BackOff = []time.Duration{100 * time.Millisecond}
	startConsumer(t, cfg)
	if err := tj.js.DeleteStream(t.Context(), "CRM_EVENTS_DLQ"); err != nil {
		t.Fatal(err)
	}
	tj.publish(t, "crm.events.deal.assigned", newEvent(t, "evt-nowhere", "deal.assigned", "D1"), ModeBinary)
	// A redelivery shows the message was naked, not terminated, while the
	// dead-letter stream was missing.
	waitFor(t, "a redelivery", func() bool { return got.count() >= 2 })

	again, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := again.Setup(t.Context()); err != nil { // recreates the dead-letter stream
		t.Fatal(err)
	}
	waitFor(t, "the message to be terminated", tj.settledAll(t, 1))
	dl := tj.deadLetters(t)
	if len(dl) != 1 {
		t.Fatalf("dead letters = %d, want 1", len(dl))
	}
	if d, _ := strconv.Atoi(dl[0].Header.Get(HeaderDeliveries)); d < 2 {
		t.Errorf("%s = %d, want at least 2", HeaderDeliveries, d)
	}
}

// TestInflightGauge checks crmshare.inflight: the events admitted and not
// settled while the handler holds them, and zero once they are settled.
func TestInflightGauge(t *testing.T) {
	tj := startJS(t)
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	release := make(chan struct{})
	var entered atomic.Int64
	cfg := tj.config(HandlerFunc(func(ctx context.Context, ev event.Event) error {
		entered.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	}))
	cfg.MeterProvider = mp
	cfg.Concurrency = 3
	startConsumer(t, cfg)
	for i := range 3 {
		ev := newEvent(t, fmt.Sprintf("evt-inflight-%d", i), "deal.assigned", fmt.Sprintf("D%d", i))
		tj.publish(t, "crm.events.deal.assigned", ev, ModeBinary)
	}
	waitFor(t, "three events in the handler", func() bool { return entered.Load() == 3 })
	if n := counterSum(t, reader, "crmshare.inflight"); n != 3 {
		t.Errorf("crmshare.inflight with 3 events held = %d, want 3", n)
	}
	close(release)
	waitFor(t, "the events to be acked", tj.settledAll(t, 3))
	waitFor(t, "crmshare.inflight to return to 0", func() bool { return counterSum(t, reader, "crmshare.inflight") == 0 })
}
