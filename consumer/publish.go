package consumer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/propagation"
)

// Mode is how a CloudEvent is carried in a NATS message. The zero value is invalid.
type Mode int

// The CloudEvents content modes.
const (
	// ModeStructured puts the whole event in the body as JSON with content-type
	// application/cloudevents+json.
	ModeStructured Mode = iota + 1
	// ModeBinary puts the attributes in ce- headers and the data in the body.
	ModeBinary
)

// String returns "structured" or "binary".
func (m Mode) String() string {
	switch m {
	case ModeStructured:
		return "structured"
	case ModeBinary:
		return "binary"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// EventKey identifies a CloudEvent by its source and id (unique together per
// the CloudEvents spec) as hex SHA-256, which is safe as a Nats-Msg-Id and as a
// key-value key whatever characters the raw values hold.
func EventKey(ev event.Event) string { return EventKeyOf(ev.Source(), ev.ID()) }

// EventKeyOf is the EventKey of the event with this source and id.
func EventKeyOf(source, id string) string {
	h := sha256.New()
	h.Write([]byte(source))
	h.Write([]byte{0})
	h.Write([]byte(id))
	return hex.EncodeToString(h.Sum(nil))
}

// Encode builds the NATS message that carries ev on subject in the given
// mode. It validates ev first.
func Encode(subject string, ev event.Event, mode Mode) (*nats.Msg, error) {
	if err := ev.Validate(); err != nil {
		return nil, fmt.Errorf("encode cloudevent: %w", validationError(err))
	}
	msg := nats.NewMsg(subject)
	switch mode {
	case ModeStructured:
		if ev.DataContentType() == "" && len(ev.Data()) > 0 && !json.Valid(ev.Data()) {
			// A binary-mode event may carry opaque data without a content
			// type; the JSON format would take its data for JSON, so mark it
			// opaque and let it travel as data_base64.
			ev = ev.Clone()
			ev.SetDataContentType("application/octet-stream")
		}
		body, err := json.Marshal(ev)
		if err != nil {
			return nil, fmt.Errorf("encode structured cloudevent: %w", err)
		}
		msg.Data = body
		msg.Header.Set("content-type", "application/cloudevents+json")
	case ModeBinary:
		set := func(name, v string) {
			if v != "" {
				msg.Header.Set("ce-"+name, percentEncode(v))
			}
		}
		set("specversion", ev.SpecVersion())
		set("id", ev.ID())
		set("source", ev.Source())
		set("type", ev.Type())
		set("subject", ev.Subject())
		set("dataschema", ev.DataSchema())
		if t := ev.Time(); !t.IsZero() {
			set("time", types.FormatTime(t))
		}
		for name, v := range ev.Extensions() {
			s, err := types.Format(v)
			if err != nil {
				return nil, fmt.Errorf("encode binary cloudevent: extension %s: %w", name, err)
			}
			set(name, s)
		}
		if ct := ev.DataContentType(); ct != "" {
			msg.Header.Set("content-type", ct)
		}
		msg.Data = ev.Data()
	default:
		return nil, fmt.Errorf("encode cloudevent: invalid mode %v", mode)
	}
	return msg, nil
}

// Publish publishes ev to subject in the given mode and waits for the stream's
// acknowledgement. It sets Nats-Msg-Id to EventKey(ev), so the stream drops a
// repeat within its duplicate window, and injects the trace context of ctx as
// traceparent/tracestate headers.
func Publish(ctx context.Context, js jetstream.JetStream, subject string, ev event.Event, mode Mode) (*jetstream.PubAck, error) {
	msg, err := Encode(subject, ev, mode)
	if err != nil {
		return nil, err
	}
	propagation.TraceContext{}.Inject(ctx, headerCarrier(msg.Header))
	ack, err := js.PublishMsg(ctx, msg, jetstream.WithMsgID(EventKey(ev)))
	if err != nil {
		return nil, fmt.Errorf("publish %s: %w", subject, err)
	}
	return ack, nil
}

// percentEncode escapes what the CloudEvents NATS binding requires in header
// values: space, double quote, percent, and anything not printable ASCII.
func percentEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c == '"' || c == '%' || c >= 0x7f {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
