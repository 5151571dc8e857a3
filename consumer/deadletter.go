package consumer

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Headers added to a dead letter. The original headers are kept, except the
// Nats-* ones, which would steer the dead-letter publish itself (dedup id,
// expected sequence, TTL); the original Nats-Msg-Id moves to
// Crmshare-Original-Msg-Id.
const (
	HeaderError            = "Crmshare-Error"
	HeaderZohoCode         = "Crmshare-Zoho-Code"
	HeaderRule             = "Crmshare-Rule"
	HeaderOriginalSubject  = "Crmshare-Original-Subject"
	HeaderOriginalStream   = "Crmshare-Original-Stream"
	HeaderOriginalSequence = "Crmshare-Original-Sequence"
	HeaderOriginalMsgID    = "Crmshare-Original-Msg-Id"
	HeaderDeliveries       = "Crmshare-Deliveries"
	HeaderFailedAt         = "Crmshare-Failed-At"
)

var classWords = map[string]string{
	classDecode:     "undecodable cloudevent",
	classPermanent:  "permanent failure",
	classMaxDeliver: "retries exhausted",
	classSuspended:  "suspended on the last allowed delivery",
}

// deadLetter publishes the original message with the failure headers to
// <DeadLetter.Subject>.<original subject> and waits for the stream's
// acknowledgement. Its Nats-Msg-Id is derived from the original stream
// sequence, so a crash between this publish and the term does not store it
// twice.
func (c *Consumer) deadLetter(ctx context.Context, j *job, class string, cause error, now time.Time) error {
	msg, id := c.cfg.DeadLetter.deadLetterMsg(j.msg.Subject(), j.msg.Headers(), j.msg.Data(), j.md.Stream,
		j.md.Sequence.Stream, j.md.NumDelivered, class, cause, now)
	if _, err := c.cfg.JS.PublishMsg(ctx, msg, jetstream.WithMsgID(id), jetstream.WithExpectStream(c.cfg.DeadLetter.Stream)); err != nil {
		return fmt.Errorf("publish dead letter %s: %w", msg.Subject, err)
	}
	return nil
}

// headerSafe keeps a value on one line and bounded, as NATS headers need.
func headerSafe(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
	const limit = 1024
	if len(s) > limit {
		s = strings.ToValidUTF8(s[:limit], "")
	}
	return s
}
