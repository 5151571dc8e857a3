package consumer

import (
	"context"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
)

func BenchmarkDecode(b *testing.B) {
	ev := newEvent(b, "evt-1", "deal.assigned", "D1")
	ev.SetExtension("tenant", "acme corp")
	for _, mode := range []Mode{ModeStructured, ModeBinary} {
		msg, err := Encode("crm.events.deal.assigned", ev, mode)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(mode.String(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Decode(msg.Data, msg.Header); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCatchUp measures draining a backlog end to end (decode, ledger
// read, handler, ledger write, double ack) with a no-op handler over
// embedded JetStream: one op is one event. Run with a small -benchtime, e.g.
// -benchtime=2000x.
func BenchmarkCatchUp(b *testing.B) {
	tj := startJS(b)
	cfg := tj.config(HandlerFunc(func(context.Context, event.Event) error { return nil }))
	cfg.Concurrency = 16
	c, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Setup(b.Context()); err != nil {
		b.Fatal(err)
	}
	for i := range b.N {
		tj.publish(b, "crm.events.deal.assigned", newEvent(b, eventID(i), "deal.assigned", "D"), ModeBinary)
	}
	b.ResetTimer()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	waitFor(b, "the backlog to drain", tj.settledAll(b, uint64(b.N)))
	b.StopTimer()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}
