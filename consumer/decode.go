package consumer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrNotCloudEvent is a message that is neither a structured nor a binary
// CloudEvent.
var ErrNotCloudEvent = errors.New("not a cloudevent: no ce- headers, no application/cloudevents content type and no specversion in a json body")

// DecodeError is a message that cannot be decoded into a valid CloudEvent.
// Redelivering it cannot help, so it is dead-lettered on first delivery.
type DecodeError struct {
	Mode string // "structured", "binary" or "" when the mode was not recognised
	Err  error
}

// Error describes what was wrong with the message.
func (e *DecodeError) Error() string {
	if e.Mode == "" {
		return "decode cloudevent: " + e.Err.Error()
	}
	return "decode " + e.Mode + " cloudevent: " + e.Err.Error()
}

// Unwrap returns the underlying problem.
func (e *DecodeError) Unwrap() error { return e.Err }

// Retryable is false: the same bytes will fail the same way.
func (e *DecodeError) Retryable() bool { return false }

// ErrorCode is "DECODE", for dead-letter headers and metrics.
func (e *DecodeError) ErrorCode() string { return "DECODE" }

// DecodeMsg decodes a JetStream message; see Decode.
func DecodeMsg(msg jetstream.Msg) (event.Event, error) {
	return Decode(msg.Data(), msg.Headers())
}

// Decode turns a NATS message body and headers into a validated CloudEvent.
//
// A message is structured when its content-type header starts with
// "application/cloudevents", or, leniently, when it has no ce- headers and its
// body is a JSON object with a "specversion" member. It is binary when it has
// ce- headers: header names match in any case, values are percent-decoded,
// datacontenttype comes from content-type or ce-datacontenttype, and the body
// is the data. Every error is a *DecodeError.
func Decode(data []byte, h nats.Header) (event.Event, error) {
	ct := headerValue(h, "content-type")
	switch {
	case strings.HasPrefix(strings.ToLower(strings.TrimSpace(ct)), "application/cloudevents"):
		return decodeStructured(data)
	case hasCEHeaders(h):
		return decodeBinary(data, h, ct)
	case looksStructured(data):
		return decodeStructured(data)
	}
	return event.Event{}, &DecodeError{Err: ErrNotCloudEvent}
}

func decodeStructured(data []byte) (event.Event, error) {
	var ev event.Event
	if err := json.Unmarshal(data, &ev); err != nil {
		return event.Event{}, &DecodeError{Mode: "structured", Err: err}
	}
	if err := ev.Validate(); err != nil {
		return event.Event{}, &DecodeError{Mode: "structured", Err: validationError(err)}
	}
	return ev, nil
}

func decodeBinary(data []byte, h nats.Header, contentType string) (event.Event, error) {
	fail := func(err error) (event.Event, error) {
		return event.Event{}, &DecodeError{Mode: "binary", Err: err}
	}
	attrs := make(map[string]string)
	for k, vs := range h {
		lk := strings.ToLower(k)
		if !strings.HasPrefix(lk, "ce-") || len(vs) == 0 {
			continue
		}
		name := lk[len("ce-"):]
		if _, dup := attrs[name]; dup {
			return fail(fmt.Errorf("attribute %q appears in more than one header", name))
		}
		v, err := url.PathUnescape(vs[0])
		if err != nil {
			return fail(fmt.Errorf("header %s: %w", k, err))
		}
		attrs[name] = v
	}
	sv, ok := attrs["specversion"]
	if !ok {
		return fail(errors.New("missing ce-specversion header"))
	}
	if sv != event.CloudEventsVersionV1 && sv != event.CloudEventsVersionV03 {
		return fail(fmt.Errorf("unsupported specversion %q", sv))
	}
	ev := event.New(sv)
	delete(attrs, "specversion")
	for name, v := range attrs {
		switch name {
		case "id":
			ev.SetID(v)
		case "source":
			ev.SetSource(v)
		case "type":
			ev.SetType(v)
		case "subject":
			ev.SetSubject(v)
		case "dataschema", "schemaurl":
			ev.SetDataSchema(v)
		case "time":
			t, err := types.ParseTime(v)
			if err != nil {
				return fail(fmt.Errorf("ce-time %q: %w", v, err))
			}
			ev.SetTime(t)
		case "datacontenttype":
			if contentType == "" {
				contentType = v
			}
		default:
			ev.SetExtension(name, v)
		}
	}
	if contentType != "" {
		ev.SetDataContentType(contentType)
	}
	if len(data) > 0 {
		ev.DataEncoded = bytes.Clone(data)
	}
	if err := ev.Validate(); err != nil {
		return fail(validationError(err))
	}
	return ev, nil
}

// validationError makes the SDK's map-based error (random order, one line
// per field) stable and single-line, so it fits a header and a log line.
func validationError(err error) error {
	var ve event.ValidationError
	if !errors.As(err, &ve) {
		return err
	}
	keys := make([]string, 0, len(ve))
	for k := range ve {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+": "+ve[k].Error())
	}
	return &invalidEventError{msg: "invalid event: " + strings.Join(parts, "; "), err: err}
}

type invalidEventError struct {
	msg string
	err error
}

func (e *invalidEventError) Error() string { return e.msg }
func (e *invalidEventError) Unwrap() error { return e.err }

func hasCEHeaders(h nats.Header) bool {
	for k := range h {
		if len(k) > 3 && strings.EqualFold(k[:3], "ce-") {
			return true
		}
	}
	return false
}

func looksStructured(data []byte) bool {
	d := bytes.TrimSpace(data)
	if len(d) == 0 || d[0] != '{' {
		return false
	}
	var probe struct {
		SpecVersion *json.RawMessage `json:"specversion"`
	}
	return json.Unmarshal(d, &probe) == nil && probe.SpecVersion != nil
}

// headerValue returns the first value of the header named key in any case.
func headerValue(h nats.Header, key string) string {
	if vs, ok := h[key]; ok && len(vs) > 0 {
		return vs[0]
	}
	for k, vs := range h {
		if strings.EqualFold(k, key) && len(vs) > 0 {
			return vs[0]
		}
	}
	return ""
}
