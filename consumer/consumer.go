package consumer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Readiness errors returned by Ready.
var (
	// ErrDisconnected: the NATS connection is not up (it keeps reconnecting).
	ErrDisconnected = errors.New("consumer: nats not connected")
	// ErrNotBound: Setup has not run, or the server lost the consumer and it
	// is being recreated.
	ErrNotBound = errors.New("consumer: not bound to the durable consumer")
	// ErrSuspended: a handler error asked to suspend (rejected credentials);
	// consumption resumes once the probe succeeds.
	ErrSuspended = errors.New("consumer: suspended until the probe succeeds")
)

// settleTimeout bounds one ack, nak or dead-letter publish.
const settleTimeout = 10 * time.Second

// Consumer consumes CloudEvents from a durable JetStream pull consumer and
// settles each according to its Handler's result:
//
//   - nil: record the event in the ledger, then ack;
//   - an error with Suspend() true (credentials rejected): nak with a delay,
//     stop fetching and dispatching, report not ready, and resume once
//     Config.Probe succeeds;
//   - an error with Retryable() false, or any error on the last allowed
//     delivery: publish to the dead-letter stream, then terminate;
//   - any other error: nak with the configured backoff for the delivery count,
//     one step longer when Throttled() is true, at least RetryDelay().
//
// Undecodable messages are dead-lettered on first delivery. Rule() and
// ErrorCode() found on the error go to the dead-letter headers and the log.
type Consumer struct {
	cfg     Config
	pol     policy
	log     *slog.Logger
	tracer  trace.Tracer
	prop    propagation.TextMapPropagator
	metrics *instruments
	keyer   Keyer
	planner Planner
	batcher Coalescer // the Handler, when it takes runs of events
	// ledgerPub writes ledger entries without waiting for each confirmation;
	// failures reach its error handler, which logs them.
	ledgerPub jetstream.JetStream
	// inflight and recent hold what this process recorded that its ledger
	// reads may not show yet (see inflightKeys and recentKeys).
	inflight *inflightKeys
	recent   *recentKeys
	pending  atomic.Int64
	// signal wakes Run when a handler asked to suspend or the server
	// reported the consumer gone.
	signal chan struct{}

	mu      sync.Mutex
	cons    jetstream.Consumer
	ledger  *ledger
	bound   bool
	paused  bool
	gone    bool
	running bool
	sched   *scheduler // of the current Run
}

// New checks cfg, fills in its defaults and returns a Consumer. Call Setup,
// then Run.
func New(cfg Config) (*Consumer, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("consumer config: %w", err)
	}
	c := &Consumer{
		cfg: cfg,
		pol: policy{
			backoff:      slices.Clone(cfg.Consumer.BackOff),
			maxDeliver:   cfg.Consumer.MaxDeliver,
			suspendDelay: cfg.ProbeInterval,
		},
		log:      cfg.Logger,
		tracer:   tracerFrom(cfg.TracerProvider),
		prop:     propagation.TraceContext{},
		signal:   make(chan struct{}, 1),
		inflight: newInflightKeys(),
		recent:   newRecentKeys(recentKeysKept),
	}
	if c.log == nil {
		c.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c.keyer, _ = cfg.Handler.(Keyer)
	c.planner, _ = cfg.Handler.(Planner)
	c.batcher, _ = cfg.Handler.(Coalescer)
	m, err := newInstruments(cfg.MeterProvider, &c.pending)
	if err != nil {
		return nil, err
	}
	c.metrics = m
	c.ledgerPub, err = jetstream.New(cfg.Conn,
		jetstream.WithPublishAsyncMaxPending(max(256, 4*cfg.Consumer.MaxAckPending)),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, msg *nats.Msg, err error) {
			// The work is done and acked; only a later replay could repeat
			// it, and the Handler is idempotent.
			c.log.Warn("record applied event", "ledger_subject", msg.Subject, "error", err)
		}))
	if err != nil {
		return nil, fmt.Errorf("consumer: ledger publisher: %w", err)
	}
	return c, nil
}

// Ready returns nil while the connection is up, the consumer is bound and
// consumption is not suspended; otherwise ErrDisconnected, ErrNotBound or
// ErrSuspended.
func (c *Consumer) Ready() error {
	if c.cfg.Conn.Status() != nats.CONNECTED {
		return ErrDisconnected
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case !c.bound:
		return ErrNotBound
	case c.paused:
		return ErrSuspended
	}
	return nil
}

func (c *Consumer) wake() {
	select {
	case c.signal <- struct{}{}:
	default:
	}
}

// Run consumes until ctx is done, then shuts down gracefully: it stops
// fetching, gives back (naks) what did not start, lets running handlers
// finish within ShutdownGrace, cancels and naks the rest, flushes, and returns
// nil. The caller closes the connection afterwards. Run returns an error only
// if it cannot start (Setup not called, or Run already running).
func (c *Consumer) Run(ctx context.Context) error {
	c.mu.Lock()
	if c.cons == nil {
		c.mu.Unlock()
		return errors.New("consumer: run before setup")
	}
	if c.running {
		c.mu.Unlock()
		return errors.New("consumer: already running")
	}
	c.running = true
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.running = false
		c.mu.Unlock()
	}()

	c.log.InfoContext(ctx, "consumer starting", "stream", c.cfg.Stream.Name, "consumer", c.cfg.Consumer.Durable,
		"concurrency", c.cfg.Concurrency)
	batch := 1
	if c.batcher != nil {
		batch = maxBatch
	}
	sched := newScheduler(c.cfg.Consumer.MaxAckPending, batch, c.cfg.Consumer.AckWait+fenceMargin)
	c.mu.Lock()
	c.sched = sched
	c.mu.Unlock()
	workCtx, hardStop := context.WithCancel(context.WithoutCancel(ctx))
	defer hardStop()

	var workers sync.WaitGroup
	for range c.cfg.Concurrency {
		workers.Go(func() {
			for run := sched.next(); run != nil; run = sched.next() {
				c.processRun(workCtx, sched, run)
			}
		})
	}
	keepCtx, stopKeep := context.WithCancel(ctx)
	var keeper sync.WaitGroup
	keeper.Go(func() { c.keepAlive(keepCtx, sched) })

	// Before fetching: events a killed replica left unsettled must not be
	// overtaken by later events of their records.
	c.fenceOrphans(ctx, sched)
	left := c.consumeLoop(ctx, sched)

	// Shutting down: nothing new is admitted; what never started goes back.
	left = append(left, sched.close()...)
	for _, j := range left {
		c.settle(workCtx, j, reply{kind: decisionNak}, context.Canceled)
	}
	done := make(chan struct{})
	go func() { workers.Wait(); close(done) }()
	grace := time.NewTimer(c.cfg.ShutdownGrace)
	select {
	case <-done:
		grace.Stop()
	case <-grace.C:
		c.log.Warn("shutdown grace over: canceling running handlers", "grace", c.cfg.ShutdownGrace)
		hardStop()
		<-done
	}
	stopKeep()
	keeper.Wait()
	select {
	case <-c.ledgerPub.PublishAsyncComplete():
	case <-time.After(settleTimeout):
		c.log.Warn("ledger writes unconfirmed on shutdown", "pending", c.ledgerPub.PublishAsyncPending())
	}
	if err := c.cfg.Conn.FlushTimeout(settleTimeout); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		c.log.Warn("flush on shutdown", "error", err)
	}
	c.log.Info("consumer stopped", "stream", c.cfg.Stream.Name, "consumer", c.cfg.Consumer.Durable)
	return nil
}

// consumeLoop keeps a Consume running until ctx is done: it stops while
// suspended and resumes after a successful probe, and rebinds when the server
// reports the consumer gone. On shutdown it closes the scheduler before
// draining, so a full scheduler cannot hold up the drain, and returns the
// jobs that never started.
func (c *Consumer) consumeLoop(ctx context.Context, sched *scheduler) (left []*job) {
	watch := time.NewTicker(c.cfg.WatchInterval)
	defer watch.Stop()
	retry := c.cfg.ProbeInterval
	for ctx.Err() == nil {
		c.mu.Lock()
		paused, gone, cons := c.paused, c.gone, c.cons
		c.mu.Unlock()
		switch {
		case paused:
			c.probeUntilHealthy(ctx, sched)
			continue
		case gone:
			c.rebind(ctx, &retry)
			continue
		}
		cc, err := cons.Consume(func(msg jetstream.Msg) { c.receive(msg, sched) },
			// Pull as much as the scheduler may hold: events of one record
			// that arrive together then wait together and go out as one run.
			jetstream.PullMaxMessages(c.cfg.Consumer.MaxAckPending),
			jetstream.ConsumeErrHandler(c.onConsumeError),
		)
		if err != nil {
			c.log.Error("start consuming", "error", err)
			c.markGone()
			continue
		}
		retry = c.cfg.ProbeInterval
	wait:
		for {
			select {
			case <-ctx.Done():
				left = sched.close()
				break wait
			case <-c.signal:
				break wait
			case <-watch.C:
				c.sample(ctx, cons)
			}
		}
		// Drain delivers what the client buffered to receive, which gives it
		// back while suspended or shutting down.
		cc.Drain()
		select {
		case <-cc.Closed():
		case <-time.After(settleTimeout):
			cc.Stop()
		}
	}
	return left
}

// sample refreshes the pending gauge and notices a deleted consumer.
func (c *Consumer) sample(ctx context.Context, cons jetstream.Consumer) {
	ictx, cancel := context.WithTimeout(ctx, settleTimeout)
	defer cancel()
	info, err := cons.Info(ictx)
	switch {
	case err == nil:
		c.pending.Store(int64(info.NumPending))
	case errors.Is(err, jetstream.ErrConsumerNotFound), errors.Is(err, jetstream.ErrStreamNotFound):
		c.log.Error("consumer gone; recreating", "error", err)
		c.markGone()
	}
}

func (c *Consumer) onConsumeError(_ jetstream.ConsumeContext, err error) {
	if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
		c.log.Error("consumer gone; recreating", "error", err)
		c.markGone()
		return
	}
	c.log.Warn("consume", "error", err)
}

func (c *Consumer) markGone() {
	c.mu.Lock()
	c.gone, c.bound = true, false
	c.mu.Unlock()
	c.wake()
}

// rebind tries once to bind the consumer again, waiting *retry first; it
// doubles *retry on failure.
func (c *Consumer) rebind(ctx context.Context, retry *time.Duration) bool {
	t := time.NewTimer(*retry)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	}
	cons, err := c.bind(ctx)
	if err != nil {
		c.log.Error("rebind consumer", "error", err, "retry_in", *retry)
		*retry = min(2**retry, c.cfg.MaxProbeInterval)
		return false
	}
	c.mu.Lock()
	c.cons, c.bound, c.gone = cons, true, false
	c.mu.Unlock()
	c.log.Info("consumer rebound", "consumer", c.cfg.Consumer.Durable)
	return true
}

// suspend pauses dispatching and wakes Run to stop fetching.
func (c *Consumer) suspend() {
	c.mu.Lock()
	already, sched := c.paused, c.sched
	c.paused = true
	c.mu.Unlock()
	if !already {
		if sched != nil {
			sched.setPaused(true)
		}
		c.wake()
	}
}

// probeUntilHealthy probes with a doubling interval until Probe succeeds,
// then resumes.
func (c *Consumer) probeUntilHealthy(ctx context.Context, sched *scheduler) {
	interval := c.cfg.ProbeInterval
	c.log.Error("consumption suspended: probing before resuming", "probe_interval", interval)
	for {
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		err := c.probe(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		interval = min(2*interval, c.cfg.MaxProbeInterval)
		c.log.Warn("probe", "error", err, "retry_in", interval)
	}
	c.mu.Lock()
	c.paused = false
	c.mu.Unlock()
	sched.setPaused(false)
	// Drop a suspend signal raised by a handler that was still running.
	select {
	case <-c.signal:
	default:
	}
	c.log.Info("consumption resumed")
}

func (c *Consumer) probe(ctx context.Context) error {
	if c.cfg.Probe == nil {
		return nil
	}
	pctx, cancel := context.WithTimeout(ctx, c.cfg.HandlerTimeout)
	defer cancel()
	return c.cfg.Probe(pctx)
}

// keepAlive sends InProgress for every admitted message well before AckWait
// runs out, whether it waits in a lane or runs long.
func (c *Consumer) keepAlive(ctx context.Context, sched *scheduler) {
	t := time.NewTicker(c.cfg.Consumer.AckWait / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			for _, j := range sched.snapshot() {
				j.keepAlive()
			}
		}
	}
}

// receive runs on the Consume goroutine: it decodes, starts the span and
// admits the message, or gives it back when not accepting work.
func (c *Consumer) receive(msg jetstream.Msg, sched *scheduler) {
	md, err := msg.Metadata()
	if err != nil {
		// Not a JetStream delivery; nothing to settle.
		c.log.Error("message without jetstream metadata", "subject", msg.Subject(), "error", err)
		return
	}
	c.pending.Store(int64(md.NumPending))
	if md.NumDelivered > 1 {
		c.metrics.redelivered.Add(context.Background(), 1)
	}
	j := &job{msg: msg, md: md, seq: md.Sequence.Stream, admitted: time.Now()}
	j.ev, j.decodeErr = DecodeMsg(msg)
	if j.decodeErr == nil {
		j.key = EventKey(j.ev)
		c.inflight.admit(j.key)
		if !c.cfg.Force {
			c.mu.Lock()
			led := c.ledger
			c.mu.Unlock()
			if led != nil {
				j.lookup = led.start([]string{j.key})
			}
		}
		switch {
		case c.planner != nil:
			var keys []string
			keys, j.plan = c.planner.PlanKeys(j.ev)
			j.keys = uniqueKeys(keys)
		case c.keyer != nil:
			j.keys = uniqueKeys(c.keyer.OrderingKeys(j.ev))
		}
	}
	j.ctx, j.span = c.startSpan(j)
	c.metrics.inflight.Add(1)

	switch adm, delay := sched.add(j, c.pol.lastDelivery(md.NumDelivered)); adm {
	case admitted:
	case overflow:
		// Too many events already wait behind fences: this one comes back
		// after the fenced event's redelivery instead of taking a slot.
		c.settle(context.Background(), j, reply{kind: decisionNak, delay: delay}, errHeldBack)
	default:
		c.mu.Lock()
		paused := c.paused
		c.mu.Unlock()
		var r reply
		cause := error(context.Canceled)
		if paused {
			r = reply{kind: decisionNak, delay: c.cfg.ProbeInterval}
			cause = ErrSuspended
		} else {
			r = reply{kind: decisionNak}
		}
		c.settle(context.Background(), j, r, cause)
	}
}

func uniqueKeys(keys []string) []string {
	if len(keys) < 2 {
		return keys
	}
	out := slices.Clone(keys)
	slices.Sort(out)
	return slices.Compact(out)
}

func (c *Consumer) startSpan(j *job) (context.Context, trace.Span) {
	parent := c.prop.Extract(context.Background(), headerCarrier(j.msg.Headers()))
	if !trace.SpanContextFromContext(parent).IsValid() && j.decodeErr == nil {
		parent = c.prop.Extract(context.Background(), eventCarrier(j.ev))
	}
	ctx, span := c.tracer.Start(parent, "process "+j.msg.Subject(), trace.WithSpanKind(trace.SpanKindConsumer))
	// The attributes are set after the start (the samplers in use decide by
	// parent and trace ID only), and only on a span that records: with
	// tracing off they were most of the per-event allocations.
	if !span.IsRecording() {
		return ctx, span
	}
	attrs := []attribute.KeyValue{
		semconv.MessagingSystemKey.String("nats"),
		semconv.MessagingOperationName("process"),
		semconv.MessagingOperationTypeProcess,
		semconv.MessagingDestinationName(j.msg.Subject()),
		semconv.MessagingConsumerGroupName(c.cfg.Consumer.Durable),
		attrStreamName.String(j.md.Stream),
		attrStreamSeq.Int64(int64(j.md.Sequence.Stream)),
		attrDelivered.Int64(int64(j.md.NumDelivered)),
		semconv.MessagingMessageBodySize(len(j.msg.Data())),
	}
	if j.decodeErr == nil {
		attrs = append(attrs,
			semconv.MessagingMessageID(j.ev.ID()),
			semconv.CloudEventsEventID(j.ev.ID()),
			semconv.CloudEventsEventType(j.ev.Type()),
			semconv.CloudEventsEventSource(j.ev.Source()),
		)
		if s := j.ev.Subject(); s != "" {
			attrs = append(attrs, semconv.CloudEventsEventSubject(s))
		}
	} else if id := headerValue(j.msg.Headers(), jetstream.MsgIDHeader); id != "" {
		attrs = append(attrs, semconv.MessagingMessageID(id))
	}
	span.SetAttributes(attrs...)
	return ctx, span
}

// process handles one job on a worker and settles it. ctx is canceled only
// when the shutdown grace is over.
func (c *Consumer) process(ctx context.Context, j *job) {
	if j.decodeErr != nil {
		c.settle(ctx, j, decide(j.decodeErr, j.md.NumDelivered, c.pol), j.decodeErr)
		return
	}
	c.mu.Lock()
	led := c.ledger
	c.mu.Unlock()
	hctx, cancel := context.WithTimeout(withDelivery(trace.ContextWithSpan(ctx, j.span), j), c.cfg.HandlerTimeout)
	defer cancel()
	if !c.cfg.Force {
		applied, err := c.alreadyApplied(hctx, led, j)
		if err != nil {
			c.settle(ctx, j, decide(err, j.md.NumDelivered, c.pol), err)
			return
		}
		if applied {
			c.metrics.ledgerHits.Add(j.ctx, 1)
			c.settle(ctx, j, reply{kind: decisionSkipDuplicate}, nil)
			return
		}
	}
	if j.plan != nil {
		hctx = j.plan(hctx)
	}
	err := c.handle(hctx, j.ev)
	r := decide(err, j.md.NumDelivered, c.pol)
	if r.kind == decisionAck {
		c.recordApplied(j)
	}
	c.settle(ctx, j, r, err)
}

// recentKeysKept is how many recorded keys a consumer remembers after their
// jobs settled: at thousands of events a second, a fraction of a second,
// well beyond the time the server takes to store a write it has received.
const recentKeysKept = 2048

// ledgerFreshFor is how old the ledger read started on arrival may be when
// the event's turn comes; an event that waited longer is read again.
const ledgerFreshFor = 2 * time.Second

// alreadyApplied reports whether j's event is in the ledger, waiting for the
// read started on its arrival (or starting one). An event of the same key
// that this process applied since counts too: it waited in the same lane.
func (c *Consumer) alreadyApplied(ctx context.Context, led *ledger, j *job) (bool, error) {
	if c.appliedHere(j.key) {
		return true, nil
	}
	if j.lookup == nil || time.Since(j.lookup.started) > ledgerFreshFor {
		j.lookup = led.start([]string{j.key})
	}
	a, err := j.lookup.wait(ctx)
	if err != nil {
		j.lookup = nil
		return false, err
	}
	return a[0] || c.appliedHere(j.key), nil
}

// appliedHere reports whether this process recorded key while a job of it
// was in flight, or lately.
func (c *Consumer) appliedHere(key string) bool {
	return c.inflight.recorded(key) || c.recent.has(key)
}

// handle calls the Handler, turning a panic into a retryable error so the
// message is retried and finally dead-lettered instead of crashing the
// process.
func (c *Consumer) handle(ctx context.Context, ev event.Event) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panic: %v", p)
		}
	}()
	return c.cfg.Handler.Handle(ctx, ev)
}

// settle carries out r for j and records it in the span, metrics and log.
// When a dead letter cannot be published the message is naked instead: it is
// never terminated before its copy is safe.
func (c *Consumer) settle(ctx context.Context, j *job, r reply, cause error) {
	defer j.span.End()
	if !j.settle() {
		return
	}
	// Counted once per job: a job settled twice (shut down while its
	// handler ran) must not take the gauge below zero.
	defer c.metrics.inflight.Add(-1)
	if j.decodeErr == nil {
		defer c.inflight.release(j.key)
	}
	now := time.Now()
	var serr error
	switch r.kind {
	case decisionAck, decisionSkipDuplicate:
		// A plain ack, as the ledger entry was: both go out on the same
		// connection, the entry first. An ack the server never gets brings
		// a redelivery after AckWait, which the ledger turns into a skip;
		// waiting for the server to confirm each ack would cost a round
		// trip per event and guard nothing more.
		serr = j.msg.Ack()
	case decisionNak:
		if r.delay > 0 {
			serr = j.msg.NakWithDelay(r.delay)
		} else {
			serr = j.msg.Nak()
		}
	case decisionDeadLetter:
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
		derr := c.deadLetter(sctx, j, r.class, cause, now)
		cancel()
		if derr != nil {
			cause = errors.Join(cause, derr)
			r = reply{kind: decisionNak, delay: c.pol.step(j.md.NumDelivered), suspend: r.suspend}
			serr = j.msg.NakWithDelay(r.delay)
			break
		}
		c.metrics.deadLetters.Add(j.ctx, 1, metric.WithAttributes(attribute.String("reason", r.class)))
		serr = j.msg.TermWithReason(headerSafe(r.class + ": " + cause.Error()))
	}
	if r.kind == decisionNak && !errors.Is(cause, context.Canceled) && !errors.Is(cause, errHeldBack) {
		// Fence the event's records until its redelivery settles, so later
		// events on them do not overtake it.
		j.fenceFor = r.delay + c.cfg.Consumer.AckWait + fenceMargin
	}
	if serr != nil && r.kind != decisionNak {
		// The server may not have the ack or term (a lost connection): it
		// then redelivers after the ack wait, and later events of the same
		// records must not overtake that redelivery either.
		j.fenceFor = c.cfg.Consumer.AckWait + c.pol.step(j.md.NumDelivered) + fenceMargin
	}
	if r.suspend {
		c.suspend()
	}

	evType := j.ev.Type()
	if j.decodeErr != nil {
		evType = "undecodable"
	}
	c.metrics.events.Add(j.ctx, 1, c.metrics.eventAttrs.get(eventLabels{evType, r.kind}, func() []attribute.KeyValue {
		return []attribute.KeyValue{attribute.String("type", evType), attribute.String("decision", r.kind.String())}
	}))
	c.metrics.duration.Record(j.ctx, now.Sub(j.md.Timestamp).Seconds(), c.metrics.decisionAttrs.get(r.kind, func() []attribute.KeyValue {
		return []attribute.KeyValue{attribute.String("decision", r.kind.String())}
	}))

	if j.span.IsRecording() {
		j.span.SetAttributes(attrDecision.String(r.kind.String()))
		if r.kind == decisionNak {
			j.span.SetAttributes(attrDelay.Int64(r.delay.Milliseconds()))
		}
		if r.kind == decisionDeadLetter {
			j.span.SetAttributes(attrDLQClass.String(r.class))
		}
	}
	if cause != nil && j.span.IsRecording() {
		j.span.RecordError(cause)
		j.span.SetStatus(codes.Error, cause.Error())
		et := errorCode(cause)
		if et == "" {
			et = fmt.Sprintf("%T", cause)
		}
		j.span.SetAttributes(semconv.ErrorTypeKey.String(et))
	}

	level := slog.LevelDebug
	switch r.kind {
	case decisionNak:
		level = slog.LevelWarn
	case decisionDeadLetter:
		level = slog.LevelError
	}
	if serr != nil {
		level = max(level, slog.LevelWarn)
	}
	if !c.log.Enabled(j.ctx, level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("event_id", j.ev.ID()),
		slog.String("subject", j.msg.Subject()),
		slog.String("type", evType),
		slog.Uint64("stream_seq", j.md.Sequence.Stream),
		slog.Uint64("deliveries", j.md.NumDelivered),
		slog.String("decision", r.kind.String()),
	}
	if r.kind == decisionNak {
		attrs = append(attrs, slog.Duration("delay", r.delay))
	}
	if r.kind == decisionDeadLetter {
		attrs = append(attrs, slog.String("reason", r.class))
	}
	if cause != nil {
		attrs = append(attrs, slog.String("error", cause.Error()))
		if code := errorCode(cause); code != "" {
			attrs = append(attrs, slog.String("zoho_code", code))
		}
		if rule := errorRule(cause); rule != "" {
			attrs = append(attrs, slog.String("rule", rule))
		}
	}
	if serr != nil {
		attrs = append(attrs, slog.String("settle_error", serr.Error()))
	}
	c.log.LogAttrs(j.ctx, level, "event settled", attrs...)
}
