package consumer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// BatchHandler is optionally implemented by a replay's Handler: HandleBatch
// handles several events at once, in the given (stream) order, and returns
// one error per event, classified like Handle's. It may fold the events'
// effects per record. It must return when ctx is done.
type BatchHandler interface {
	HandleBatch(ctx context.Context, evs []event.Event) []error
}

// ErrReplaySuspended: a handler error asked to suspend (rejected
// credentials); the replay stops instead of dead-lettering the rest.
var ErrReplaySuspended = errors.New("replay stopped: an error asked to suspend")

// ReplayConfig configures Replay. Every zero value is a documented default;
// names and policy default as in Config.
type ReplayConfig struct {
	// JS is the JetStream context. Required.
	JS jetstream.JetStream
	// Stream to replay. Default "CRM_EVENTS".
	Stream string
	// FilterSubjects narrows the replay to these subjects. Empty: all.
	FilterSubjects []string
	// StartSeq starts at this stream sequence. Zero: see Since.
	StartSeq uint64
	// Since starts at the first message stored at or after it (and, with
	// StartSeq, skips older messages). Zero with StartSeq zero: the whole stream.
	Since time.Time
	// Until stops before the first message stored after it. Zero: the replay
	// ends at the last message stored when it started.
	Until time.Time
	// Handler handles each event. Required. With Batch > 1 and a Handler that
	// implements BatchHandler, events go to HandleBatch Batch at a time.
	Handler Handler
	// Batch is how many events are handled together. Default 1.
	Batch int
	// Force hands events listed in the ledger to the Handler too. Default false.
	Force bool
	// DryRun writes neither the ledger nor dead letters (the Handler should
	// not write either). Default false.
	DryRun bool
	// Rate caps events per second. Zero: no cap.
	Rate float64
	// Ledger is the bucket of applied events (must exist). Default bucket "CRMSHARE_LEDGER".
	Ledger LedgerConfig
	// DeadLetter is where events that fail permanently go. Defaults as in Config.
	DeadLetter DeadLetterConfig
	// MaxDeliver is how many times an event is tried before it is dead-lettered
	// ("retries exhausted"). -1: unlimited. Default 10.
	MaxDeliver int
	// BackOff is the wait before each retry, by attempt; the last repeats.
	// Default [2s, 10s, 30s, 1m, 5m].
	BackOff []time.Duration
	// HandlerTimeout bounds the handling of one event (a batch gets it once
	// per event). Default 60s.
	HandlerTimeout time.Duration
	// Progress, if set, is called after each event is settled.
	Progress func(ReplayProgress)
	// Logger gets one line per dead letter and retry. Nil discards.
	Logger *slog.Logger
	// TracerProvider makes a "replay <subject>" span per event. Nil: none.
	TracerProvider trace.TracerProvider
}

// ReplayProgress is how far a replay got.
type ReplayProgress struct {
	Done      int    // events settled
	Remaining uint64 // events after the last one delivered, as the server counted then
	Sequence  uint64 // stream sequence of the last event settled
}

// ReplayStats is what a replay did.
type ReplayStats struct {
	Events       int    // messages in range
	Handled      int    // handed to the Handler and succeeded
	Skipped      int    // listed in the ledger (not forced)
	DeadLettered int    // published to the dead-letter stream (or, dry run, would be)
	Retries      int    // retryable failures retried
	FirstSeq     uint64 // first stream sequence replayed; 0 when none
	LastSeq      uint64 // last stream sequence replayed
	Duration     time.Duration
}

func (c *ReplayConfig) setDefaults() {
	if c.Stream == "" {
		c.Stream = "CRM_EVENTS"
	}
	if c.Batch == 0 {
		c.Batch = 1
	}
	if c.Ledger.Bucket == "" {
		c.Ledger.Bucket = "CRMSHARE_LEDGER"
	}
	if c.DeadLetter.Stream == "" {
		c.DeadLetter.Stream = "CRM_EVENTS_DLQ"
	}
	if c.DeadLetter.Subject == "" {
		c.DeadLetter.Subject = "crm.dlq"
	}
	if c.MaxDeliver == 0 {
		c.MaxDeliver = 10
	}
	if len(c.BackOff) == 0 {
		c.BackOff = []time.Duration{2 * time.Second, 10 * time.Second, 30 * time.Second, time.Minute, 5 * time.Minute}
	}
	if c.HandlerTimeout == 0 {
		c.HandlerTimeout = 60 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// Validate reports every problem with c at once. It expects defaults to be
// filled in (Replay does that).
func (c *ReplayConfig) Validate() error {
	var errs []error
	if c.JS == nil {
		errs = append(errs, errors.New("JS is required"))
	}
	if c.Handler == nil {
		errs = append(errs, errors.New("Handler is required"))
	}
	if c.Batch < 1 {
		errs = append(errs, fmt.Errorf("Batch %d: must be positive", c.Batch))
	}
	if c.Rate < 0 {
		errs = append(errs, fmt.Errorf("Rate %v: must not be negative", c.Rate))
	}
	if c.MaxDeliver < -1 {
		errs = append(errs, fmt.Errorf("MaxDeliver %d: must be positive or -1 (unlimited)", c.MaxDeliver))
	}
	for i, d := range c.BackOff {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("BackOff[%d] %v: must be positive", i, d))
		}
	}
	if c.HandlerTimeout < 0 {
		errs = append(errs, fmt.Errorf("HandlerTimeout %v: must not be negative", c.HandlerTimeout))
	}
	if !c.Since.IsZero() && !c.Until.IsZero() && c.Until.Before(c.Since) {
		errs = append(errs, fmt.Errorf("Until %v: before Since %v", c.Until, c.Since))
	}
	return errors.Join(errs...)
}

// replayItem is one message of a replay.
type replayItem struct {
	subject   string
	header    nats.Header
	data      []byte
	md        *jetstream.MsgMetadata
	ev        event.Event
	decodeErr error
	ctx       context.Context
	span      trace.Span
}

// replayer is one run of Replay.
type replayer struct {
	cfg    ReplayConfig
	pol    policy
	ledger *ledger
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
	stats  ReplayStats
	batch  BatchHandler
	ticker *time.Ticker
}

// Replay reads the stream from a point with an ordered ephemeral consumer
// (the durable consumer is not touched) and hands each event to the Handler
// in stream order. Events the ledger lists are skipped unless Force; handled
// events are recorded in the ledger. A failure is retried with BackOff up to
// MaxDeliver attempts; what fails permanently, or on the last attempt, is
// dead-lettered with the same headers the service uses. An error asking to
// suspend stops the replay with ErrReplaySuspended, and so does the end of
// ctx (with its error); the stats say how far it got.
func Replay(ctx context.Context, cfg ReplayConfig) (ReplayStats, error) {
	start := time.Now()
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return ReplayStats{}, fmt.Errorf("replay config: %w", err)
	}
	r := &replayer{
		cfg:    cfg,
		pol:    policy{backoff: slices.Clone(cfg.BackOff), maxDeliver: cfg.MaxDeliver},
		tracer: tracerFrom(cfg.TracerProvider),
		prop:   propagation.TraceContext{},
	}
	if bh, ok := cfg.Handler.(BatchHandler); ok && cfg.Batch > 1 {
		r.batch = bh
	}
	if cfg.Rate > 0 {
		r.ticker = time.NewTicker(time.Duration(float64(time.Second) / cfg.Rate))
		defer r.ticker.Stop()
	}
	err := r.run(ctx)
	r.stats.Duration = time.Since(start)
	return r.stats, err
}

func (r *replayer) run(ctx context.Context) error {
	js := r.cfg.JS
	st, err := js.Stream(ctx, r.cfg.Stream)
	if err != nil {
		return fmt.Errorf("bind stream %s: %w", r.cfg.Stream, err)
	}
	kv, err := js.KeyValue(ctx, r.cfg.Ledger.Bucket)
	if err != nil {
		return fmt.Errorf("bind ledger bucket %s: %w", r.cfg.Ledger.Bucket, err)
	}
	r.ledger = newLedger(js, kv, r.cfg.Ledger.Bucket)
	info, err := st.Info(ctx)
	if err != nil {
		return fmt.Errorf("stream %s: %w", r.cfg.Stream, err)
	}
	endSeq := info.State.LastSeq
	if info.State.Msgs == 0 || (r.cfg.StartSeq > endSeq) {
		return nil
	}
	occ := jetstream.OrderedConsumerConfig{
		FilterSubjects:    r.cfg.FilterSubjects,
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		InactiveThreshold: time.Minute,
	}
	switch {
	case r.cfg.StartSeq > 0:
		occ.DeliverPolicy, occ.OptStartSeq = jetstream.DeliverByStartSequencePolicy, r.cfg.StartSeq
	case !r.cfg.Since.IsZero():
		t := r.cfg.Since
		occ.DeliverPolicy, occ.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
	}
	cons, err := js.OrderedConsumer(ctx, r.cfg.Stream, occ)
	if err != nil {
		return fmt.Errorf("ordered consumer on %s: %w", r.cfg.Stream, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(max(2*r.cfg.Batch, 16)))
	if err != nil {
		return fmt.Errorf("replay %s: %w", r.cfg.Stream, err)
	}
	defer it.Stop()

	var pending []*replayItem
	for {
		nctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		msg, err := it.Next(jetstream.NextContext(nctx))
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return r.endWith(ctx, pending, ctx.Err())
			}
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
				// Nothing came: either nothing is left in range (a filter
				// whose last match is before endSeq), or the server is slow.
				ci, ierr := cons.Info(ctx)
				if ierr == nil && ci.NumPending == 0 {
					return r.flush(ctx, pending)
				}
				continue
			}
			return r.endWith(ctx, pending, fmt.Errorf("replay %s: %w", r.cfg.Stream, err))
		}
		md, err := msg.Metadata()
		if err != nil {
			return r.endWith(ctx, pending, fmt.Errorf("replay %s: %w", r.cfg.Stream, err))
		}
		seq := md.Sequence.Stream
		if seq > endSeq || (!r.cfg.Until.IsZero() && md.Timestamp.After(r.cfg.Until)) {
			return r.flush(ctx, pending)
		}
		if !r.cfg.Since.IsZero() && md.Timestamp.Before(r.cfg.Since) {
			continue
		}
		if r.ticker != nil {
			select {
			case <-ctx.Done():
				return r.endWith(ctx, pending, ctx.Err())
			case <-r.ticker.C:
			}
		}
		pending = append(pending, r.admit(msg, md))
		last := md.NumPending == 0 || seq == endSeq
		if len(pending) >= r.cfg.Batch || last {
			if err := r.flush(ctx, pending); err != nil {
				return err
			}
			pending = pending[:0]
		}
		if last {
			return nil
		}
	}
}

// endWith ends the spans of items that were not handled and returns err.
func (r *replayer) endWith(_ context.Context, items []*replayItem, err error) error {
	for _, it := range items {
		it.span.End()
	}
	return err
}

func (r *replayer) admit(msg jetstream.Msg, md *jetstream.MsgMetadata) *replayItem {
	it := &replayItem{subject: msg.Subject(), header: msg.Headers(), data: msg.Data(), md: md}
	it.ev, it.decodeErr = Decode(it.data, it.header)
	r.stats.Events++
	if r.stats.FirstSeq == 0 {
		r.stats.FirstSeq = md.Sequence.Stream
	}
	r.stats.LastSeq = md.Sequence.Stream
	parent := r.prop.Extract(context.Background(), headerCarrier(it.header))
	if !trace.SpanContextFromContext(parent).IsValid() && it.decodeErr == nil {
		parent = r.prop.Extract(context.Background(), eventCarrier(it.ev))
	}
	attrs := []attribute.KeyValue{
		semconv.MessagingSystemKey.String("nats"),
		semconv.MessagingOperationName("replay"),
		semconv.MessagingOperationTypeProcess,
		semconv.MessagingDestinationName(it.subject),
		attrStreamName.String(md.Stream),
		attrStreamSeq.Int64(int64(md.Sequence.Stream)),
	}
	if it.decodeErr == nil {
		attrs = append(attrs, semconv.CloudEventsEventID(it.ev.ID()), semconv.CloudEventsEventType(it.ev.Type()),
			semconv.CloudEventsEventSource(it.ev.Source()))
	}
	it.ctx, it.span = r.tracer.Start(parent, "replay "+it.subject,
		trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...))
	return it
}

// flush handles items (in stream order) until each is settled: recorded,
// skipped or dead-lettered.
func (r *replayer) flush(ctx context.Context, items []*replayItem) error {
	var work []*replayItem
	for i, it := range items {
		if it.decodeErr != nil {
			if err := r.deadLetter(ctx, it, 1, classDecode, it.decodeErr); err != nil {
				return r.endWith(ctx, items[i:], err)
			}
			continue
		}
		if !r.cfg.Force {
			applied, err := r.ledger.applied(ctx, EventKey(it.ev))
			if err != nil {
				return r.endWith(ctx, items[i:], err)
			}
			if applied {
				r.stats.Skipped++
				r.settled(it, "skip_duplicate", nil)
				continue
			}
		}
		work = append(work, it)
	}
	for attempt := uint64(1); len(work) > 0; attempt++ {
		errs := r.handle(ctx, work, attempt)
		var again []*replayItem
		var wait time.Duration
		for i, it := range work {
			err := errs[i]
			var s suspender
			switch {
			case err == nil:
				if !r.cfg.DryRun {
					lerr := r.ledger.record(context.WithoutCancel(ctx), EventKey(it.ev), LedgerEntry{
						ID: it.ev.ID(), Source: it.ev.Source(), Type: it.ev.Type(),
						Stream: it.md.Stream, Sequence: it.md.Sequence.Stream, AppliedAt: time.Now().UTC(),
					})
					if lerr != nil {
						r.cfg.Logger.Warn("record applied event", "event_id", it.ev.ID(), "error", lerr)
					}
				}
				r.stats.Handled++
				r.settled(it, "ack", nil)
				continue
			case errors.As(err, &s) && s.Suspend():
				return r.endWith(ctx, work[i:], fmt.Errorf("%w: event %s (stream sequence %d): %w",
					ErrReplaySuspended, it.ev.ID(), it.md.Sequence.Stream, err))
			case errors.Is(err, context.Canceled) && ctx.Err() != nil:
				return r.endWith(ctx, work[i:], ctx.Err())
			}
			rep := decide(err, attempt, r.pol)
			if rep.kind == decisionDeadLetter {
				if derr := r.deadLetter(ctx, it, attempt, rep.class, err); derr != nil {
					return r.endWith(ctx, work[i:], derr)
				}
				continue
			}
			r.stats.Retries++
			r.cfg.Logger.Warn("replay: retrying event", "event_id", it.ev.ID(), "stream_seq", it.md.Sequence.Stream,
				"attempt", attempt, "delay", rep.delay, "error", err)
			wait = max(wait, rep.delay)
			again = append(again, it)
		}
		work = again
		if len(work) > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return r.endWith(ctx, work, ctx.Err())
			case <-t.C:
			}
		}
	}
	return nil
}

// handle runs one attempt over items and returns one error per item.
func (r *replayer) handle(ctx context.Context, items []*replayItem, attempt uint64) []error {
	errs := make([]error, len(items))
	if r.batch != nil && len(items) > 1 {
		hctx, cancel := context.WithTimeout(ctx, time.Duration(len(items))*r.cfg.HandlerTimeout)
		defer cancel()
		evs := make([]event.Event, len(items))
		for i, it := range items {
			evs[i] = it.ev
		}
		out := r.callBatch(hctx, evs)
		copy(errs, out)
		return errs
	}
	for i, it := range items {
		d := Delivery{Stream: it.md.Stream, Sequence: it.md.Sequence.Stream, Subject: it.subject,
			NumDelivered: attempt, Timestamp: it.md.Timestamp}
		hctx, cancel := context.WithTimeout(context.WithValue(trace.ContextWithSpan(ctx, it.span), deliveryKey{}, d),
			r.cfg.HandlerTimeout)
		errs[i] = r.callOne(hctx, it.ev)
		cancel()
	}
	return errs
}

func (r *replayer) callOne(ctx context.Context, ev event.Event) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panic: %v", p)
		}
	}()
	return r.cfg.Handler.Handle(ctx, ev)
}

func (r *replayer) callBatch(ctx context.Context, evs []event.Event) (errs []error) {
	defer func() {
		if p := recover(); p != nil {
			errs = make([]error, len(evs))
			for i := range errs {
				errs[i] = fmt.Errorf("handler panic: %v", p)
			}
		}
	}()
	errs = r.batch.HandleBatch(ctx, evs)
	if len(errs) != len(evs) {
		return slices.Repeat([]error{fmt.Errorf("batch handler returned %d errors for %d events", len(errs), len(evs))}, len(evs))
	}
	return errs
}

// deadLetter publishes it to the dead-letter stream (not in a dry run).
func (r *replayer) deadLetter(ctx context.Context, it *replayItem, attempt uint64, class string, cause error) error {
	r.stats.DeadLettered++
	id := it.ev.ID()
	r.cfg.Logger.Error("replay: dead-lettering event", "event_id", id, "subject", it.subject,
		"stream_seq", it.md.Sequence.Stream, "reason", class, "error", cause, "zoho_code", errorCode(cause),
		"dry_run", r.cfg.DryRun)
	if !r.cfg.DryRun {
		msg, msgID := r.cfg.DeadLetter.deadLetterMsg(it.subject, it.header, it.data, it.md.Stream,
			it.md.Sequence.Stream, attempt, class, cause, time.Now())
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
		defer cancel()
		if _, err := r.cfg.JS.PublishMsg(sctx, msg, jetstream.WithMsgID(msgID),
			jetstream.WithExpectStream(r.cfg.DeadLetter.Stream)); err != nil {
			it.span.End()
			return fmt.Errorf("publish dead letter %s: %w", msg.Subject, err)
		}
	}
	r.settled(it, "dead_letter", cause)
	return nil
}

// settled ends it's span and reports progress.
func (r *replayer) settled(it *replayItem, decision string, cause error) {
	it.span.SetAttributes(attrDecision.String(decision))
	if cause != nil {
		it.span.RecordError(cause)
		it.span.SetStatus(codes.Error, cause.Error())
	}
	it.span.End()
	if r.cfg.Progress != nil {
		r.cfg.Progress(ReplayProgress{
			Done:      r.stats.Handled + r.stats.Skipped + r.stats.DeadLettered,
			Remaining: it.md.NumPending,
			Sequence:  it.md.Sequence.Stream,
		})
	}
}
