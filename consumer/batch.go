package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/trace"
)

// Coalescer is optionally implemented by a Handler that also implements
// Keyer. When several events with the same single ordering key wait in its
// lane, the consumer hands them over together, in stream order, so the
// handler can merge their work where that is safe (for example one Zoho write
// for several grants on one record). It is the live consumer's counterpart of
// a replay's BatchHandler.
//
// HandleRun returns one error per event, in order; each is judged as
// Handle's error would be, and each event is acked, naked or dead-lettered on
// its own. An error with Deferred() true (found with errors.As) means the
// handler did not carry the event out because an earlier event of the batch
// failed: the consumer puts it back in its lane, unsettled, behind the failed
// event's redelivery. The first event is never deferred. A result of the wrong
// length fails the whole batch as retryable.
//
// The ledger is read and written per event, as for Handle. HandleRun is
// called from several goroutines at once, never twice at once for one key.
type Coalescer interface {
	HandleRun(ctx context.Context, evs []event.Event) []error
}

// maxBatch caps the events handed to HandleRun at once: Zoho takes at most
// 20 share entries per call (v8), and a grant usually names one recipient.
const maxBatch = 20

// fenceMargin is added to the nak delay and AckWait to bound how long a
// fence holds the events behind a naked one.
const fenceMargin = 5 * time.Second

// errHeldBack is the cause of a nak given to an event that would have waited
// behind a fence while too many others already did.
var errHeldBack = errors.New("consumer: held back behind an earlier event of the same record")

type deferrer interface{ Deferred() bool }

// processRun handles the jobs next handed out: one job alone, or a run of
// one lane for the Coalescer. It settles each job and releases it.
func (c *Consumer) processRun(ctx context.Context, sched *scheduler, run []*job) {
	if len(run) == 1 {
		c.process(ctx, run[0])
		sched.done(run[0])
		return
	}
	c.mu.Lock()
	led := c.ledger
	c.mu.Unlock()

	// Drop what the ledger lists as applied (the reads started as the
	// events arrived). A failed read fails that job and puts the rest back
	// behind it.
	var (
		todo   []*job
		failed *job
		ferr   error
		rest   []*job
	)
	lctx, cancel := context.WithTimeout(ctx, c.cfg.HandlerTimeout)
	for i, j := range run {
		if c.cfg.Force {
			todo = append(todo, j)
			continue
		}
		applied, err := c.alreadyApplied(lctx, led, j)
		if err != nil {
			failed, ferr, rest = j, err, run[i+1:]
			break
		}
		if applied {
			c.metrics.ledgerHits.Add(j.ctx, 1)
			c.settle(ctx, j, reply{kind: decisionSkipDuplicate}, nil)
			sched.done(j)
			continue
		}
		todo = append(todo, j)
	}
	cancel()

	var errs []error
	switch len(todo) {
	case 0:
	case 1:
		hctx, cancel := c.handlerContext(ctx, todo[0])
		if todo[0].plan != nil {
			hctx = todo[0].plan(hctx)
		}
		errs = []error{c.handle(hctx, todo[0].ev)}
		cancel()
	default:
		hctx, cancel := c.handlerContext(ctx, todo[0])
		errs = c.handleBatch(hctx, todo)
		cancel()
	}
	var deferred []*job
	for i, j := range todo {
		err := errs[i]
		var d deferrer
		if errors.As(err, &d) && d.Deferred() {
			if i > 0 {
				deferred = append(deferred, j)
				continue
			}
			err = fmt.Errorf("handler deferred the first event of a batch: %w", err)
		}
		r := decide(err, j.md.NumDelivered, c.pol)
		if r.kind == decisionAck {
			c.recordApplied(j)
		}
		c.settle(ctx, j, r, err)
		sched.done(j)
	}
	if failed != nil {
		c.settle(ctx, failed, decide(ferr, failed.md.NumDelivered, c.pol), ferr)
		sched.done(failed)
	}
	// Shutting down: what cannot wait in its lane any more goes back now.
	for _, j := range sched.requeue(append(deferred, rest...)...) {
		c.settle(ctx, j, reply{kind: decisionNak}, context.Canceled)
	}
}

// handlerContext is the context of a Handler call for j: its span, its
// delivery and the handler timeout.
func (c *Consumer) handlerContext(ctx context.Context, j *job) (context.Context, context.CancelFunc) {
	return context.WithTimeout(withDelivery(trace.ContextWithSpan(ctx, j.span), j), c.cfg.HandlerTimeout)
}

// handleBatch calls the Coalescer, turning a panic or a result of the
// wrong length into a retryable error for every event.
func (c *Consumer) handleBatch(ctx context.Context, jobs []*job) (errs []error) {
	defer func() {
		if p := recover(); p != nil {
			errs = sameError(len(jobs), fmt.Errorf("handler panic: %v", p))
		}
	}()
	evs := make([]event.Event, len(jobs))
	for i, j := range jobs {
		evs[i] = j.ev
	}
	errs = c.batcher.HandleRun(ctx, evs)
	if len(errs) != len(jobs) {
		return sameError(len(jobs), fmt.Errorf("batch handler returned %d results for %d events", len(errs), len(jobs)))
	}
	return errs
}

func sameError(n int, err error) []error {
	out := make([]error, n)
	for i := range out {
		out[i] = err
	}
	return out
}

// recordApplied writes j to the ledger after its handler succeeded, under
// its key, and remembers the key in c.inflight and c.recent. The write goes
// out before the ack on the same connection, so the server has it first, but
// neither waits for its confirmation: a write that fails is logged (see
// New), and only a later replay could then repeat the event, which the
// Handler makes harmless.
func (c *Consumer) recordApplied(j *job) {
	key := j.key
	c.inflight.record(key)
	c.recent.add(key)
	b, err := json.Marshal(LedgerEntry{
		ID: j.ev.ID(), Source: j.ev.Source(), Type: j.ev.Type(),
		Stream: j.md.Stream, Sequence: j.md.Sequence.Stream, AppliedAt: time.Now().UTC(),
	})
	if err == nil {
		_, err = c.ledgerPub.PublishMsgAsync(&nats.Msg{Subject: ledgerSubject(c.cfg.Ledger.Bucket, key), Data: b})
	}
	if err != nil {
		c.log.Warn("record applied event", "event_id", j.ev.ID(), "error", err)
	}
}

// ledgerSubject is the subject a key-value Put of key in bucket publishes to.
func ledgerSubject(bucket, key string) string { return "$KV." + bucket + "." + key }
