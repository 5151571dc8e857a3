package consumer

import (
	"context"
	"time"
)

// Delivery describes the JetStream delivery of the event a Handler is
// handling, for logs and attempt-aware decisions.
type Delivery struct {
	Stream       string    // stream name
	Sequence     uint64    // stream sequence
	Subject      string    // the message's subject
	NumDelivered uint64    // 1 on the first delivery
	Timestamp    time.Time // when the stream stored the message
}

type deliveryKey struct{}

// DeliveryFrom returns the delivery of the event being handled, if ctx is a
// Handler's context.
func DeliveryFrom(ctx context.Context) (Delivery, bool) {
	d, ok := ctx.Value(deliveryKey{}).(Delivery)
	return d, ok
}

func withDelivery(ctx context.Context, j *job) context.Context {
	return context.WithValue(ctx, deliveryKey{}, Delivery{
		Stream:       j.md.Stream,
		Sequence:     j.md.Sequence.Stream,
		Subject:      j.msg.Subject(),
		NumDelivered: j.md.NumDelivered,
		Timestamp:    j.md.Timestamp,
	})
}
