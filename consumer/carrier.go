package consumer

import (
	"strings"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/propagation"
)

// headerCarrier reads and writes trace context in NATS headers. nats.Header
// is case-sensitive, and propagation.HeaderCarrier canonicalises keys
// ("Traceparent"), so it misses the lowercase headers producers send.
type headerCarrier nats.Header

var _ propagation.TextMapCarrier = headerCarrier(nil)

// Get returns the first value of key in any case.
func (c headerCarrier) Get(key string) string { return headerValue(nats.Header(c), key) }

// Set writes key in lower case, as W3C trace context spells it.
func (c headerCarrier) Set(key, value string) {
	lk := strings.ToLower(key)
	for k := range c {
		if k != lk && strings.EqualFold(k, key) {
			delete(c, k)
		}
	}
	c[lk] = []string{value}
}

// Keys lists the header names.
func (c headerCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// extensionCarrier reads trace context from the CloudEvents distributed
// tracing extension (traceparent, tracestate). It is read-only.
type extensionCarrier map[string]any

func (c extensionCarrier) Get(key string) string {
	v, ok := c[strings.ToLower(key)]
	if !ok {
		return ""
	}
	s, err := types.ToString(v)
	if err != nil {
		return ""
	}
	return s
}

func (c extensionCarrier) Set(string, string) {}

func (c extensionCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

func eventCarrier(ev event.Event) extensionCarrier { return extensionCarrier(ev.Extensions()) }
