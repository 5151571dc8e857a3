package zoho

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// metrics holds the client's instruments, created from Config.MeterProvider.
type metrics struct {
	requests  metric.Int64Counter
	duration  metric.Float64Histogram
	refreshes metric.Int64Counter

	requestAttrs attrCache[requestLabels]
	methodAttrs  attrCache[string]
}

// requestLabels are the labels of crmshare.zoho.requests.
type requestLabels struct {
	method string
	status int
	code   string
}

// The results of a token refresh, for crmshare.zoho.token.refreshes.
const (
	refreshOK        = "ok"
	refreshRejected  = "rejected"
	refreshThrottled = "throttled"
	refreshError     = "error"
)

func newMetrics(mp metric.MeterProvider) (*metrics, error) {
	if mp == nil {
		mp = noop.NewMeterProvider()
	}
	meter := mp.Meter(instrumentationName)
	var m metrics
	var err error
	if m.requests, err = meter.Int64Counter("crmshare.zoho.requests",
		metric.WithDescription("Zoho CRM API requests by HTTP method, status and Zoho error code."),
		metric.WithUnit("{request}")); err != nil {
		return nil, err
	}
	if m.duration, err = meter.Float64Histogram("crmshare.zoho.request.duration",
		metric.WithDescription("Duration of Zoho CRM API requests, including reading the reply."),
		metric.WithUnit("s")); err != nil {
		return nil, err
	}
	if m.refreshes, err = meter.Int64Counter("crmshare.zoho.token.refreshes",
		metric.WithDescription("OAuth access-token refreshes by result: ok, rejected, throttled or error."),
		metric.WithUnit("{refresh}")); err != nil {
		return nil, err
	}
	return &m, nil
}

func (m *metrics) request(ctx context.Context, method string, status int, code string, d time.Duration) {
	ctx = context.WithoutCancel(ctx)
	m.requests.Add(ctx, 1, m.requestAttrs.get(requestLabels{method, status, code}, func() []attribute.KeyValue {
		return []attribute.KeyValue{attribute.String("method", method), attribute.Int("status", status), attribute.String("code", code)}
	}))
	m.duration.Record(ctx, d.Seconds(), m.methodAttrs.get(method, func() []attribute.KeyValue {
		return []attribute.KeyValue{attribute.String("method", method)}
	}))
}

func (m *metrics) refresh(ctx context.Context, result string) {
	m.refreshes.Add(context.WithoutCancel(ctx), 1, metric.WithAttributes(attribute.String("result", result)))
}
