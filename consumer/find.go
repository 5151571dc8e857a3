package consumer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go/jetstream"
)

// EventQuery asks what became of one CloudEvent: where the stream holds it,
// whether the consumer got to it, whether the ledger lists it as applied and
// whether it was dead-lettered.
type EventQuery struct {
	JS         jetstream.JetStream
	Stream     string           // the events stream
	Durable    string           // the service's consumer; its position says what was delivered
	Bucket     string           // the ledger
	DeadLetter DeadLetterConfig // the dead-letter stream
	ID         string           // the CloudEvent id (required)
	Source     string           // the CloudEvent source; empty matches any
	// FromSeq is where the scan of the stream starts; 0 means its first
	// message. The scan reads every message up to the last one stored when
	// it began.
	FromSeq uint64
}

// EventReport is the answer to an EventQuery.
type EventReport struct {
	ID      string
	Scanned uint64 // stream messages read
	// Copies are the stream's messages that carry the event, oldest first:
	// more than one when it was published again under another Nats-Msg-Id
	// or redriven from the dead-letter stream.
	Copies []EventCopy
	// Consumer is the service consumer's position; nil when it does not exist.
	Consumer *ConsumerPosition
	// Applied has the ledger's entry for each source the event was seen
	// with (or the source asked for) that the ledger lists.
	Applied []AppliedEntry
	// DeadLetters are the dead letters of the event, oldest first.
	DeadLetters []DeadLetter
}

// EventCopy is one stream message carrying the event.
type EventCopy struct {
	Sequence uint64
	Time     time.Time // when the stream stored it
	Subject  string
	MsgID    string // Nats-Msg-Id
	Event    event.Event
	// Delivery is where the copy stands for the consumer: "settled" (at or
	// below its ack floor), "delivered" (past the floor but delivered: acked
	// out of order, or still in flight), "pending" (not delivered yet), or
	// "" when there is no consumer.
	Delivery string
}

// ConsumerPosition is the part of the consumer's state the report uses.
type ConsumerPosition struct {
	Name          string
	AckFloor      uint64 // every stream sequence up to here is settled
	Delivered     uint64 // the highest stream sequence delivered
	NumPending    uint64 // messages not delivered yet
	NumAckPending int    // delivered and not settled
}

// AppliedEntry is the ledger's record of an applied event: its key, the
// entry, and when the bucket stored it.
type AppliedEntry struct {
	Key string `json:"key"`
	LedgerEntry
	Stored time.Time `json:"stored"`
}

// FindEvent answers q. A missing dead-letter stream or consumer is not an
// error: the report just has nothing from it.
func FindEvent(ctx context.Context, q EventQuery) (*EventReport, error) {
	if q.ID == "" {
		return nil, errors.New("find event: no id")
	}
	rep := &EventReport{ID: q.ID}
	if err := rep.scan(ctx, q); err != nil {
		return nil, err
	}
	if cons, err := q.JS.Consumer(ctx, q.Stream, q.Durable); err == nil {
		info, err := cons.Info(ctx)
		if err != nil {
			return nil, fmt.Errorf("consumer %s: %w", q.Durable, err)
		}
		rep.Consumer = &ConsumerPosition{
			Name: q.Durable, AckFloor: info.AckFloor.Stream, Delivered: info.Delivered.Stream,
			NumPending: info.NumPending, NumAckPending: info.NumAckPending,
		}
		for i := range rep.Copies {
			rep.Copies[i].Delivery = rep.Consumer.delivery(rep.Copies[i].Sequence)
		}
	} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("consumer %s: %w", q.Durable, err)
	}
	if err := rep.ledger(ctx, q); err != nil {
		return nil, err
	}
	if err := rep.deadLetters(ctx, q); err != nil {
		return nil, err
	}
	return rep, nil
}

func (p *ConsumerPosition) delivery(seq uint64) string {
	switch {
	case seq <= p.AckFloor:
		return "settled"
	case seq <= p.Delivered:
		return "delivered"
	}
	return "pending"
}

// matches reports whether ev is the event asked for.
func (q EventQuery) matches(ev event.Event) bool {
	return ev.ID() == q.ID && (q.Source == "" || ev.Source() == q.Source)
}

// scan reads the stream from q.FromSeq to its last message at the start.
func (rep *EventReport) scan(ctx context.Context, q EventQuery) error {
	st, err := q.JS.Stream(ctx, q.Stream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", q.Stream, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return fmt.Errorf("stream %s: %w", q.Stream, err)
	}
	last := info.State.LastSeq
	if info.State.Msgs == 0 || last < q.FromSeq {
		return nil
	}
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	if q.FromSeq > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, q.FromSeq
	}
	cons, err := st.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("scan %s: %w", q.Stream, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(512))
	if err != nil {
		return fmt.Errorf("scan %s: %w", q.Stream, err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	id := []byte(q.ID)
	for {
		m, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("scan %s: %w", q.Stream, ctx.Err())
			}
			return fmt.Errorf("scan %s: %w", q.Stream, err)
		}
		md, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("scan %s: %w", q.Stream, err)
		}
		rep.Scanned++
		// A structured event's id is in its body; a binary one's in a
		// header, maybe percent-encoded: decode those whole.
		if hasCEHeaders(m.Headers()) || bytes.Contains(m.Data(), id) {
			if ev, err := DecodeMsg(m); err == nil && q.matches(ev) {
				rep.Copies = append(rep.Copies, EventCopy{
					Sequence: md.Sequence.Stream, Time: md.Timestamp, Subject: m.Subject(),
					MsgID: headerValue(m.Headers(), jetstream.MsgIDHeader), Event: ev,
				})
			}
		}
		if md.Sequence.Stream >= last {
			return nil
		}
	}
}

// ledger reads the ledger entry of each source the event was seen with.
func (rep *EventReport) ledger(ctx context.Context, q EventQuery) error {
	var sources []string
	if q.Source != "" {
		sources = []string{q.Source}
	}
	for _, c := range rep.Copies {
		if !slices.Contains(sources, c.Event.Source()) {
			sources = append(sources, c.Event.Source())
		}
	}
	if len(sources) == 0 {
		return nil
	}
	kv, err := q.JS.KeyValue(ctx, q.Bucket)
	if err != nil {
		return fmt.Errorf("ledger %s: %w", q.Bucket, err)
	}
	for _, src := range sources {
		key := EventKeyOf(src, q.ID)
		e, err := kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("ledger %s: %w", q.Bucket, err)
		}
		a := AppliedEntry{Key: key, LedgerEntry: LedgerEntry{Source: src, ID: q.ID}, Stored: e.Created()}
		if err := json.Unmarshal(e.Value(), &a.LedgerEntry); err != nil {
			return fmt.Errorf("ledger %s: entry %s: %w", q.Bucket, key, err)
		}
		rep.Applied = append(rep.Applied, a)
	}
	return nil
}

// deadLetters finds the event's dead letters.
func (rep *EventReport) deadLetters(ctx context.Context, q EventQuery) error {
	d, err := OpenDeadLetters(ctx, q.JS, q.DeadLetter)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	all, err := d.List(ctx)
	if err != nil {
		return err
	}
	for _, dl := range all {
		if dl.EventID == q.ID && (q.Source == "" || dl.EventSource == q.Source) {
			rep.DeadLetters = append(rep.DeadLetters, dl)
		}
	}
	return nil
}
