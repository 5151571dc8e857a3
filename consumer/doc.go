// Package consumer reads CloudEvents from a NATS JetStream stream and hands each to
// a Handler, keeping stream order among events that touch the same records while
// running the rest in parallel. It owns the ack decision: ack on success, nak with
// a delay for failures that can heal, dead-letter and terminate the rest, and pause
// when an error says every message would fail the same way.
//
// It knows no Zoho and no rules: it asks only for a Handler and classifies errors
// through small interfaces (Retryable, Suspend, Throttled, RetryDelay).
package consumer
