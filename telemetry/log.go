package telemetry

import (
	"context"
	"io"
	"log/slog"

	"go.opentelemetry.io/otel/trace"
)

// Log attribute keys that carry the active span, for joining logs to traces.
const (
	TraceIDKey = "trace_id"
	SpanIDKey  = "span_id"
)

// newLogHandler writes JSON or text lines at level and above, redacts
// secret-looking attributes (see redactAttr) and adds trace_id and span_id
// when the record's context holds a valid span.
func newLogHandler(w io.Writer, format string, level slog.Leveler) slog.Handler {
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: redactAttr}
	var h slog.Handler
	if format == LogText {
		h = slog.NewTextHandler(w, opts)
	} else {
		h = slog.NewJSONHandler(w, opts)
	}
	return &traceHandler{top: h, cur: h}
}

// traceHandler adds the span's IDs to each record. It keeps them at the top
// level of the line even under WithGroup, so that log pipelines can find
// trace_id in one place: top is the inner handler before any group was
// opened, and ops replays what came after when a record needs the IDs.
type traceHandler struct {
	top slog.Handler
	ops []func(slog.Handler) slog.Handler
	cur slog.Handler // top with ops applied
}

// Enabled reports whether the inner handler takes records at level.
func (h *traceHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.cur.Enabled(ctx, level)
}

// Handle writes r, with trace_id and span_id when ctx carries a valid span.
func (h *traceHandler) Handle(ctx context.Context, r slog.Record) error {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return h.cur.Handle(ctx, r)
	}
	ids := []slog.Attr{
		slog.String(TraceIDKey, sc.TraceID().String()),
		slog.String(SpanIDKey, sc.SpanID().String()),
	}
	if len(h.ops) == 0 {
		r = r.Clone()
		r.AddAttrs(ids...)
		return h.cur.Handle(ctx, r)
	}
	inner := h.top.WithAttrs(ids)
	for _, op := range h.ops {
		inner = op(inner)
	}
	return inner.Handle(ctx, r)
}

// WithAttrs returns a handler that adds attrs to every record.
func (h *traceHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	if len(h.ops) == 0 {
		top := h.top.WithAttrs(attrs)
		return &traceHandler{top: top, cur: top}
	}
	return h.with(func(in slog.Handler) slog.Handler { return in.WithAttrs(attrs) })
}

// WithGroup returns a handler that puts later attributes under name.
func (h *traceHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return h.with(func(in slog.Handler) slog.Handler { return in.WithGroup(name) })
}

func (h *traceHandler) with(op func(slog.Handler) slog.Handler) *traceHandler {
	ops := make([]func(slog.Handler) slog.Handler, len(h.ops), len(h.ops)+1)
	copy(ops, h.ops)
	return &traceHandler{top: h.top, ops: append(ops, op), cur: op(h.cur)}
}
