package consumer

import (
	"context"
	"errors"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
)

// Handler handles one decoded CloudEvent. A nil error means the event is done
// (applied, nothing to do, or no rule matched) and will be acked; an error is
// classified by the interfaces it implements anywhere in its chain (see
// Consumer). Handle must return when ctx is done. It is called from several
// goroutines at once.
type Handler interface {
	Handle(ctx context.Context, ev event.Event) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, ev event.Event) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, ev event.Event) error { return f(ctx, ev) }

// Keyer is optionally implemented by a Handler. OrderingKeys names the records
// an event touches (e.g. "Deals/123"); events sharing a key are handled one
// at a time in stream order. Nil means the event has no ordering constraint.
// It must be fast and must not block: it runs on the dispatching goroutine.
type Keyer interface {
	OrderingKeys(ev event.Event) []string
}

// Planner is optionally implemented by a Keyer whose ordering keys come from
// work that handling the event would repeat, such as mapping it through
// rules. PlanKeys is called instead of OrderingKeys and returns the keys and
// a function that puts that work into a context; the consumer applies it to
// the context of the event's Handle call when the event is handled alone
// (not in a HandleRun). Handle must give the same result with or without it.
type Planner interface {
	PlanKeys(ev event.Event) (keys []string, with func(context.Context) context.Context)
}

// The error classification interfaces, matched with errors.As.
type (
	suspender  interface{ Suspend() bool }
	retryabler interface{ Retryable() bool }
	throttler  interface{ Throttled() bool }
	delayer    interface{ RetryDelay() time.Duration }
	ruler      interface{ Rule() string }
	coder      interface{ ErrorCode() string }
)

// decision is what happens to a message.
type decision int

const (
	decisionAck decision = iota + 1
	decisionNak
	decisionDeadLetter
	decisionSkipDuplicate
)

func (d decision) String() string {
	switch d {
	case decisionAck:
		return "ack"
	case decisionNak:
		return "nak"
	case decisionDeadLetter:
		return "dead_letter"
	case decisionSkipDuplicate:
		return "skip_duplicate"
	}
	return "unknown"
}

// Dead-letter reason classes, for metrics and the Crmshare-Error header.
const (
	classDecode     = "decode"
	classPermanent  = "permanent"
	classMaxDeliver = "max_deliver"
	classSuspended  = "suspended"
)

// reply is the outcome of decide.
type reply struct {
	kind    decision
	delay   time.Duration // for a nak
	class   string        // for a dead letter
	suspend bool          // pause consumption until the probe succeeds
}

// policy is the part of Config decide needs.
type policy struct {
	backoff      []time.Duration
	maxDeliver   int // -1 unlimited
	suspendDelay time.Duration
}

// step is the nak delay after delivery n (1-based); the last step repeats.
func (p policy) step(n uint64) time.Duration {
	if len(p.backoff) == 0 {
		return 0
	}
	i := int(min(n, uint64(len(p.backoff)))) - 1
	return p.backoff[max(i, 0)]
}

func (p policy) lastDelivery(delivered uint64) bool {
	return p.maxDeliver > 0 && delivered >= uint64(p.maxDeliver)
}

// decide maps a handler result and the delivery count to what happens to the
// message. It is the one place the ack policy lives.
func decide(err error, delivered uint64, p policy) reply {
	var (
		s suspender
		r retryabler
		t throttler
		d delayer
	)
	switch {
	case err == nil:
		return reply{kind: decisionAck}
	case errors.Is(err, context.Canceled):
		// Shutting down: let another replica take it now.
		return reply{kind: decisionNak}
	case errors.As(err, &s) && s.Suspend():
		// Every message would fail the same way until an operator acts, so
		// pause instead of dead-lettering the stream. On the last allowed
		// delivery the server would drop a nak silently, so keep it.
		if p.lastDelivery(delivered) {
			return reply{kind: decisionDeadLetter, class: classSuspended, suspend: true}
		}
		return reply{kind: decisionNak, delay: p.suspendDelay, suspend: true}
	case errors.As(err, &r) && !r.Retryable():
		var de *DecodeError
		if errors.As(err, &de) {
			return reply{kind: decisionDeadLetter, class: classDecode}
		}
		return reply{kind: decisionDeadLetter, class: classPermanent}
	case p.lastDelivery(delivered):
		return reply{kind: decisionDeadLetter, class: classMaxDeliver}
	}
	delay := p.step(delivered)
	if errors.As(err, &t) && t.Throttled() {
		delay = p.step(delivered + 1)
	}
	if errors.As(err, &d) && d.RetryDelay() > delay {
		delay = d.RetryDelay()
	}
	return reply{kind: decisionNak, delay: delay}
}

// errorCode and errorRule read the optional details for dead-letter headers
// and logs.
func errorCode(err error) string {
	var c coder
	if errors.As(err, &c) {
		return c.ErrorCode()
	}
	return ""
}

func errorRule(err error) string {
	var r ruler
	if errors.As(err, &r) {
		return r.Rule()
	}
	return ""
}
