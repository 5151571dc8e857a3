// Package consumer reads CloudEvents from a NATS JetStream stream and hands each to
// a Handler, keeping stream order among events that touch the same records while
// running the rest in parallel. It owns the ack decision: ack on success, nak with
// a delay for failures that can heal, dead-letter and terminate the rest, and pause
// when an error says every message would fail the same way.
//
// It knows no Zoho and no rules: it asks only for a Handler (optionally a Keyer,
// a Planner that hands the work behind the keys to Handle, or a Coalescer)
// and classifies errors through small interfaces found with errors.As anywhere in
// the chain: Suspend() bool, Retryable() bool, Throttled() bool,
// RetryDelay() time.Duration, and, for dead-letter headers and logs, Rule() string
// and ErrorCode() string. An error with none of them is retryable.
//
// Typical use:
//
//	c, err := consumer.New(consumer.Config{JS: js, Conn: nc, Handler: h, Probe: zc.Probe})
//	if err != nil { … }
//	if err := c.Setup(ctx); err != nil { … } // create or bind stream, consumer, dead letters, ledger
//	err = c.Run(ctx)                         // until ctx is done, then a graceful drain
//
// What it guarantees and what it does not:
//
//   - A message is acked only after the Handler returned nil (or the ledger
//     lists it as applied), and then the event's ledger entry is sent first,
//     on the same connection. Neither the entry nor the ack is waited for: an
//     ack the server never gets brings a redelivery, which the ledger skips,
//     and a failed ledger write is logged. A dead letter is terminated only
//     after the dead-letter stream confirmed it. Everything else is naked with
//     a delay.
//   - The ledger (a key-value bucket keyed by CloudEvent source+id) keeps an
//     applied event from reaching the Handler again on redelivery, replay or a
//     republish under another Nats-Msg-Id, for the bucket's TTL. Config.Force
//     bypasses the check for forced replays. Each event's ledger read starts
//     as it arrives and the reads waiting at once go out together in one
//     JetStream direct get (multi_last); a duplicate that waited behind the
//     event it repeats is skipped from memory, as its read may predate the
//     first copy's entry.
//   - Events sharing an ordering key are handled one at a time in stream
//     order, also across retries: a naked event fences its keys, and later
//     events on them wait in memory (kept alive with InProgress, not naked)
//     until its redelivery settles, or until the nak delay plus AckWait plus
//     a margin has passed (another replica may have taken it). At most half of
//     MaxAckPending waits behind fences; beyond that an event is given back
//     with a delay rather than hold every slot. A Handler that implements
//     Coalescer receives runs of events waiting in one lane at once.
//   - On the last allowed delivery the server drops a nak silently, so an event
//     that fails then is dead-lettered even when the error asked to suspend. If
//     the dead-letter publish itself fails on that delivery, the event stays in
//     the stream (limits retention) and the server's MAX_DELIVERIES advisory
//     points at it.
//
// The package also decodes and encodes CloudEvents on NATS messages (structured
// and binary mode, for the HTTP ingress and producers) and starts an embedded
// JetStream server for dev mode and tests.
package consumer
