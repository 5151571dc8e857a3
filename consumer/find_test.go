package consumer

import (
	"context"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
)

// TestFindEventNotConsumed: copies of an event in both content modes, one
// with an id that needs percent-encoding in binary mode, before any consumer
// ran; the scan finds them, they are pending, and --from-seq narrows it.
func TestFindEventNotConsumed(t *testing.T) {
	tj := startJS(t)
	cfg := tj.config(HandlerFunc(func(context.Context, event.Event) error { return nil }))
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Setup(t.Context()); err != nil {
		t.Fatal(err)
	}
	const id = "évt/1 é"
	other := newEvent(t, "evt-other", "deal.assigned", "D9")
	ev := newEvent(t, id, "deal.assigned", "D1")
	tj.publish(t, "crm.events.deal.assigned", other, ModeStructured)
	structured := tj.publish(t, "crm.events.deal.assigned", ev, ModeStructured)
	msg, err := Encode("crm.events.deal.assigned", ev, ModeBinary)
	if err != nil {
		t.Fatal(err)
	}
	msg.Header.Set("Nats-Msg-Id", "again")
	binary, err := tj.js.PublishMsg(t.Context(), msg)
	if err != nil {
		t.Fatal(err)
	}

	q := EventQuery{JS: tj.js, Stream: "CRM_EVENTS", Durable: "crmshare", Bucket: "CRMSHARE_LEDGER",
		DeadLetter: DeadLetterConfig{Stream: "CRM_EVENTS_DLQ", Subject: "crm.dlq"}, ID: id}
	rep, err := FindEvent(t.Context(), q)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Scanned != 3 || len(rep.Copies) != 2 {
		t.Fatalf("scanned %d, %d copies; want 3, 2", rep.Scanned, len(rep.Copies))
	}
	if rep.Copies[0].Sequence != structured.Sequence || rep.Copies[1].Sequence != binary.Sequence || rep.Copies[1].MsgID != "again" {
		t.Errorf("copies %+v, want seqs %d and %d", rep.Copies, structured.Sequence, binary.Sequence)
	}
	for _, cp := range rep.Copies {
		if cp.Delivery != "pending" || cp.Event.ID() != id {
			t.Errorf("copy %d: delivery %q id %q, want pending and %q", cp.Sequence, cp.Delivery, cp.Event.ID(), id)
		}
	}
	if rep.Consumer == nil || rep.Consumer.NumPending != 3 {
		t.Errorf("consumer %+v, want 3 pending", rep.Consumer)
	}
	if len(rep.Applied) != 0 || len(rep.DeadLetters) != 0 {
		t.Errorf("ledger %v, dead letters %v; want none", rep.Applied, rep.DeadLetters)
	}

	q.FromSeq = binary.Sequence
	if rep, err = FindEvent(t.Context(), q); err != nil {
		t.Fatal(err)
	}
	if rep.Scanned != 1 || len(rep.Copies) != 1 || rep.Copies[0].Sequence != binary.Sequence {
		t.Errorf("from seq %d: scanned %d, copies %+v; want 1 and the binary copy", binary.Sequence, rep.Scanned, rep.Copies)
	}
	q.FromSeq = binary.Sequence + 1
	if rep, err = FindEvent(t.Context(), q); err != nil {
		t.Fatal(err)
	}
	if rep.Scanned != 0 {
		t.Errorf("past the end: scanned %d; want nothing", rep.Scanned)
	}
	q.FromSeq, q.Source = 0, "urn:somewhere-else"
	if rep, err = FindEvent(t.Context(), q); err != nil {
		t.Fatal(err)
	}
	if len(rep.Copies) != 0 {
		t.Errorf("another source: %d copies; want none", len(rep.Copies))
	}
}
