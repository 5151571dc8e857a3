package consumer

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Content types of the CloudEvents HTTP binding.
const (
	contentTypeStructured = "application/cloudevents+json"
	contentTypeBatch      = "application/cloudevents-batch+json"
)

// IngressConfig configures an Ingress. Every zero value is a documented
// default.
type IngressConfig struct {
	// JS publishes the events. Required.
	JS jetstream.JetStream
	// Stream, when set, is the stream that must store the events
	// (Nats-Expected-Stream); a publish it does not capture fails with 503.
	// Default "" (any stream that captures the subject).
	Stream string
	// SubjectPrefix: an event of type T is published to <SubjectPrefix>.<T>.
	// Default "crm.events".
	SubjectPrefix string
	// BearerToken, when set, is accepted in "Authorization: Bearer <token>".
	BearerToken string
	// HMACSecret, when set, is the key of "X-Signature-256: sha256=<hex>",
	// the HMAC-SHA256 of the raw body. When both are set either one is
	// enough; when neither is set every request is accepted (bind the
	// listener to loopback then).
	HMACSecret string
	// MaxBodyBytes caps a request body; more is 413. Default 1 MiB.
	MaxBodyBytes int64
	// PublishTimeout bounds the wait for JetStream to store one event.
	// Default 10s.
	PublishTimeout time.Duration
	// Logger gets one line per refused or failed request. Nil discards.
	Logger *slog.Logger
	// TracerProvider makes the server span of each request (continuing the
	// caller's traceparent), whose context goes into every published
	// message. Nil: no spans, the caller's context is passed on as it came.
	TracerProvider trace.TracerProvider
}

func (c *IngressConfig) setDefaults() {
	if c.SubjectPrefix == "" {
		c.SubjectPrefix = "crm.events"
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 1 << 20
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// Validate reports every problem with c at once.
func (c *IngressConfig) Validate() error {
	var errs []error
	if c.JS == nil {
		errs = append(errs, errors.New("JS is required"))
	}
	if p := c.SubjectPrefix; strings.ContainsAny(p, " \t\r\n*>") || strings.HasPrefix(p, ".") || strings.HasSuffix(p, ".") || strings.Contains(p, "..") {
		errs = append(errs, fmt.Errorf("SubjectPrefix %q: must be a plain subject without wildcards", p))
	}
	if c.MaxBodyBytes < 1 {
		errs = append(errs, fmt.Errorf("MaxBodyBytes %d: must be positive", c.MaxBodyBytes))
	}
	if c.PublishTimeout < 0 {
		errs = append(errs, fmt.Errorf("PublishTimeout %v: must not be negative", c.PublishTimeout))
	}
	return errors.Join(errs...)
}

// Ingress is an http.Handler that accepts CloudEvents over HTTP (POST, binary,
// structured or batch mode) and publishes them to JetStream. It answers:
//
//   - 202 once JetStream stored every event (a repeat of a stored event within
//     the duplicate window counts as stored: 200 when all were repeats);
//   - 400 for a body that is not a valid CloudEvent (a batch is refused whole
//     when any event is invalid), or an event type that cannot be a subject;
//   - 401 without valid authentication; 405 for a method other than POST;
//   - 413 for a body over MaxBodyBytes;
//   - 503 when JetStream did not store an event (the caller should retry the
//     same events; their ids make the retry safe).
//
// The body is JSON: {"results": [{"id", "source", "type", "subject",
// "status": "stored"|"duplicate"|"failed", "stream", "seq", "error"}]} or
// {"error": "..."}. Each message's Nats-Msg-Id is EventKey (source and id),
// so a webhook retried with the same event is stored once.
type Ingress struct {
	cfg    IngressConfig
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
}

// NewIngress checks cfg, fills in its defaults and returns an Ingress.
func NewIngress(cfg IngressConfig) (*Ingress, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("ingress config: %w", err)
	}
	return &Ingress{cfg: cfg, tracer: tracerFrom(cfg.TracerProvider), prop: propagation.TraceContext{}}, nil
}

// IngressResult is what happened to one event of a request.
type IngressResult struct {
	ID      string `json:"id"`
	Source  string `json:"source"`
	Type    string `json:"type"`
	Subject string `json:"subject"` // the NATS subject
	Status  string `json:"status"`  // "stored", "duplicate" or "failed"
	Stream  string `json:"stream,omitempty"`
	Seq     uint64 `json:"seq,omitempty"`
	Error   string `json:"error,omitempty"`
}

type ingressReply struct {
	Results []IngressResult `json:"results,omitempty"`
	Error   string          `json:"error,omitempty"`
}

// incoming is one decoded event and the message that carries it on.
type incoming struct {
	ev  event.Event
	msg *nats.Msg
}

// ServeHTTP handles one request; see Ingress.
func (in *Ingress) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := in.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	ctx, span := in.tracer.Start(ctx, "POST /ingress", trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(semconv.HTTPRequestMethodKey.String(r.Method), semconv.URLPath(r.URL.Path)))
	defer span.End()
	reply := func(status int, body ingressReply) {
		span.SetAttributes(semconv.HTTPResponseStatusCode(status))
		if status >= 400 {
			span.SetStatus(codes.Error, body.Error)
			in.cfg.Logger.WarnContext(ctx, "ingress request refused", "status", status, "error", body.Error,
				"remote", r.RemoteAddr)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(body)
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		reply(http.StatusMethodNotAllowed, ingressReply{Error: "use POST"})
		return
	}
	bearerOK := in.bearerOK(r)
	if !bearerOK && in.cfg.HMACSecret == "" && in.cfg.BearerToken != "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="crmshare"`)
		reply(http.StatusUnauthorized, ingressReply{Error: "missing or wrong bearer token"})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, in.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			reply(http.StatusRequestEntityTooLarge, ingressReply{Error: fmt.Sprintf("body over %d bytes", in.cfg.MaxBodyBytes)})
			return
		}
		reply(http.StatusBadRequest, ingressReply{Error: "read body: " + err.Error()})
		return
	}
	if !bearerOK && !in.signatureOK(r, body) && (in.cfg.BearerToken != "" || in.cfg.HMACSecret != "") {
		reply(http.StatusUnauthorized, ingressReply{Error: "missing or wrong bearer token or X-Signature-256"})
		return
	}
	events, err := in.decode(r.Header, body)
	if err != nil {
		reply(http.StatusBadRequest, ingressReply{Error: err.Error()})
		return
	}
	span.SetAttributes(attribute.Int("crmshare.ingress.events", len(events)))

	results := make([]IngressResult, len(events))
	status := http.StatusOK
	for i, e := range events {
		res := &results[i]
		*res = IngressResult{ID: e.ev.ID(), Source: e.ev.Source(), Type: e.ev.Type(), Subject: e.msg.Subject}
		in.prop.Inject(ctx, headerCarrier(e.msg.Header))
		pctx, cancel := context.WithTimeout(ctx, in.cfg.PublishTimeout)
		opts := []jetstream.PublishOpt{jetstream.WithMsgID(EventKey(e.ev))}
		if in.cfg.Stream != "" {
			opts = append(opts, jetstream.WithExpectStream(in.cfg.Stream))
		}
		ack, err := in.cfg.JS.PublishMsg(pctx, e.msg, opts...)
		cancel()
		switch {
		case err != nil:
			res.Status, res.Error = "failed", "jetstream did not store the event: "+err.Error()
			status = http.StatusServiceUnavailable
			span.RecordError(err)
		case ack.Duplicate:
			res.Status, res.Stream, res.Seq = "duplicate", ack.Stream, ack.Sequence
		default:
			res.Status, res.Stream, res.Seq = "stored", ack.Stream, ack.Sequence
			if status == http.StatusOK {
				status = http.StatusAccepted
			}
		}
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
		reply(status, ingressReply{Results: results, Error: "jetstream did not store every event; retry them"})
		return
	}
	reply(status, ingressReply{Results: results})
}

func (in *Ingress) bearerOK(r *http.Request) bool {
	if in.cfg.BearerToken == "" {
		return false
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(tok), []byte(in.cfg.BearerToken)) == 1
}

func (in *Ingress) signatureOK(r *http.Request, body []byte) bool {
	if in.cfg.HMACSecret == "" {
		return false
	}
	got, ok := strings.CutPrefix(r.Header.Get("X-Signature-256"), "sha256=")
	if !ok {
		return false
	}
	sig, err := hex.DecodeString(strings.TrimSpace(got))
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, []byte(in.cfg.HMACSecret))
	mac.Write(body)
	return hmac.Equal(sig, mac.Sum(nil))
}

// decode turns the request into events and their messages; any invalid event
// fails the whole request.
func (in *Ingress) decode(h http.Header, body []byte) ([]incoming, error) {
	mt, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
	switch {
	case mt == contentTypeBatch:
		var raws []json.RawMessage
		if err := json.Unmarshal(body, &raws); err != nil {
			return nil, fmt.Errorf("batch: want a JSON array of structured cloudevents: %w", err)
		}
		if len(raws) == 0 {
			return nil, errors.New("batch: no events")
		}
		out := make([]incoming, 0, len(raws))
		var errs []error
		for i, raw := range raws {
			e, err := in.structured(raw)
			if err != nil {
				errs = append(errs, fmt.Errorf("event %d: %w", i, err))
				continue
			}
			out = append(out, e)
		}
		if len(errs) > 0 {
			return nil, fmt.Errorf("batch refused, nothing published: %w", errors.Join(errs...))
		}
		return out, nil
	case strings.HasPrefix(mt, "application/cloudevents"):
		e, err := in.structured(body)
		if err != nil {
			return nil, err
		}
		return []incoming{e}, nil
	case h.Get("Ce-Specversion") != "":
		nh := nats.Header{}
		for k, vs := range h {
			if strings.HasPrefix(strings.ToLower(k), "ce-") && len(vs) > 0 {
				nh.Set(strings.ToLower(k), vs[0])
			}
		}
		if ct := h.Get("Content-Type"); ct != "" {
			nh.Set("content-type", ct)
		}
		ev, err := Decode(body, nh)
		if err != nil {
			return nil, err
		}
		subject, err := in.subject(ev)
		if err != nil {
			return nil, err
		}
		msg, err := Encode(subject, ev, ModeBinary)
		if err != nil {
			return nil, err
		}
		return []incoming{{ev: ev, msg: msg}}, nil
	}
	return nil, errors.New("not a cloudevent: want ce-* headers (binary mode), or content type " +
		contentTypeStructured + " or " + contentTypeBatch)
}

// structured decodes one structured event and keeps its bytes as they came.
func (in *Ingress) structured(raw []byte) (incoming, error) {
	ev, err := decodeStructured(raw)
	if err != nil {
		return incoming{}, err
	}
	subject, err := in.subject(ev)
	if err != nil {
		return incoming{}, err
	}
	msg := nats.NewMsg(subject)
	msg.Header.Set("content-type", contentTypeStructured)
	msg.Data = raw
	return incoming{ev: ev, msg: msg}, nil
}

// subject is <prefix>.<type>; the type must make a valid literal subject.
func (in *Ingress) subject(ev event.Event) (string, error) {
	t := ev.Type()
	if strings.ContainsAny(t, " \t\r\n*>") || strings.HasPrefix(t, ".") || strings.HasSuffix(t, ".") || strings.Contains(t, "..") {
		return "", fmt.Errorf("type %q cannot be a NATS subject (no spaces, '*', '>' or empty tokens)", t)
	}
	return in.cfg.SubjectPrefix + "." + t, nil
}
