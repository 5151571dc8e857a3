package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/cloudevents/sdk-go/v2/event"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/crmshare/crmshare/zoho"
)

// instrumentationName names the tracer and meter of the share handler.
const instrumentationName = "github.com/crmshare/crmshare/handlers"

// Mapper turns a CloudEvent into share intents. *Rules satisfies it. Map must be
// pure (no I/O, no clock), so a mapping error is permanent for that event.
type Mapper interface {
	// Map returns the intents for the event, in rule order; none is fine.
	Map(ev event.Event) ([]Intent, error)
	// Keys returns the records the event's intents will touch, as "Module/RecordID".
	Keys(ev event.Event) []string
}

// Config configures a Handler. The zero value of each optional field is a
// documented default.
type Config struct {
	// Mapper maps events to intents. Required.
	Mapper Mapper
	// Sharer carries intents out in Zoho. Required; usually a *zoho.Client.
	Sharer Sharer
	// Directory resolves emails and checks user IDs. Nil: the Sharer, when it also
	// implements Directory (as *zoho.Client does); otherwise required.
	Directory Directory
	// APIVersion is the Zoho dialect the Sharer speaks: "v2", "v2.1" or "v8". It
	// decides the limits checked before writing (10 users; on v8 also 5 groups and
	// 5 roles) and whether groups and roles are allowed at all. Empty: the Sharer's
	// APIVersion() when it has one, else "v8".
	APIVersion string
	// Logger receives one debug line per intent carried out. Nil: discard. Errors
	// are returned, not logged: the consumer logs each failed message once.
	Logger *slog.Logger
	// TracerProvider makes the "share <module>" span of each intent. Nil: no-op.
	TracerProvider trace.TracerProvider
	// MeterProvider makes the crmshare.intents and crmshare.share_calls
	// counters. Nil: no-op.
	MeterProvider metric.MeterProvider
}

func (c *Config) setDefaults() {
	if c.Directory == nil {
		if d, ok := c.Sharer.(Directory); ok {
			c.Directory = d
		}
	}
	if c.APIVersion == "" {
		if v, ok := c.Sharer.(interface{ APIVersion() string }); ok {
			c.APIVersion = v.APIVersion()
		}
	}
	if c.APIVersion == "" {
		c.APIVersion = "v8"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.TracerProvider == nil {
		c.TracerProvider = tracenoop.NewTracerProvider()
	}
	if c.MeterProvider == nil {
		c.MeterProvider = metricnoop.NewMeterProvider()
	}
}

// Validate reports every problem with the configuration at once.
func (c Config) Validate() error {
	var errs []error
	if c.Mapper == nil {
		errs = append(errs, errors.New("mapper is required"))
	}
	if c.Sharer == nil {
		errs = append(errs, errors.New("sharer is required"))
	}
	if c.Directory == nil {
		errs = append(errs, errors.New("directory is required (the sharer does not implement it)"))
	}
	switch c.APIVersion {
	case "", "v2", "v2.1", "v8":
	default:
		errs = append(errs, fmt.Errorf("api version %q is not supported (want v2, v2.1 or v8)", c.APIVersion))
	}
	return errors.Join(errs...)
}

// Handler carries out share intents in Zoho idempotently: it reads a record's
// sharing where it must, writes only the difference, and applies the intents of
// one record one at a time. It is safe for concurrent use.
type Handler struct {
	mapper  Mapper
	sharer  Sharer
	dir     Directory
	version string
	limits  limits
	logger  *slog.Logger
	tracer  trace.Tracer
	intents metric.Int64Counter
	calls   metric.Int64Counter
	locks   recordLocks

	// intentAttrs holds the attribute set of every (action, outcome) of
	// crmshare.intents, and callAttrs every (action, method) of
	// crmshare.share_calls, built once.
	intentAttrs map[intentLabels]metric.MeasurementOption
	callAttrs   map[callLabels]metric.MeasurementOption
}

// intentLabels are the labels of crmshare.intents.
type intentLabels struct {
	action  Action
	outcome string
}

// New returns a Handler for cfg.
func New(cfg Config) (*Handler, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("share handler config: %w", err)
	}
	counter, err := cfg.MeterProvider.Meter(instrumentationName).Int64Counter("crmshare.intents",
		metric.WithDescription("Share intents carried out, by action and outcome (applied, unchanged, already_accessible, error)."),
		metric.WithUnit("{intent}"))
	if err != nil {
		return nil, fmt.Errorf("share handler: intents counter: %w", err)
	}
	calls, err := cfg.MeterProvider.Meter(instrumentationName).Int64Counter("crmshare.share_calls",
		metric.WithDescription("Calls to Zoho's share endpoint made to carry out intents, by the intents' action "+
			"(mixed when one write carried several) and HTTP method: what each kind of intent costs in API credits."),
		metric.WithUnit("{call}"))
	if err != nil {
		return nil, fmt.Errorf("share handler: share calls counter: %w", err)
	}
	return &Handler{
		mapper:  cfg.Mapper,
		sharer:  cfg.Sharer,
		dir:     cfg.Directory,
		version: cfg.APIVersion,
		limits:  limitsFor(cfg.APIVersion),
		logger:  cfg.Logger,
		tracer:  cfg.TracerProvider.Tracer(instrumentationName),
		intents: counter,
		calls:   calls,
		locks:   recordLocks{m: make(map[string]*recordLock)},

		intentAttrs: intentAttrSets(),
		callAttrs:   callAttrSets(),
	}, nil
}

// Handle maps the event and carries out its intents. A nil error means the
// message may be acked. A non-nil error is an *Error or several joined with
// errors.Join (retryable ones first, so errors.As finds a retryable one when any
// is): Retryable() says whether a redelivery may succeed, and errors.As reaches
// *zoho.Error and *zoho.CredentialsError.
func (h *Handler) Handle(ctx context.Context, ev event.Event) error {
	_, err := h.Apply(ctx, ev)
	return err
}

// Apply maps the event and carries out its intents, reporting what happened to
// each. A mapping error is permanent and wraps ErrMapper.
func (h *Handler) Apply(ctx context.Context, ev event.Event) (Report, error) {
	var intents []Intent
	var err error
	if p, ok := ctx.Value(planKey{}).(*plan); ok && p.source == ev.Source() && p.id == ev.ID() {
		intents = p.intents
	} else {
		intents, err = h.mapper.Map(ev)
	}
	if err != nil {
		e := &Error{class: classPermanent, err: fmt.Errorf("%w: %w", ErrMapper, err)}
		var r interface{ Rule() string }
		if errors.As(err, &r) {
			e.rule = r.Rule()
		}
		return Report{}, e
	}
	return h.ApplyIntents(ctx, intents)
}

// OrderingKeys returns the records the event will touch, as "Module/RecordID",
// so a consumer can apply events for the same record in order.
func (h *Handler) OrderingKeys(ev event.Event) []string { return h.mapper.Keys(ev) }

// PlanKeys maps the event once for both its ordering keys and its handling:
// the returned function puts the intents into a context, where Handle and
// Apply take them instead of mapping the event again. An event the rules
// cannot map gets the best-effort keys of OrderingKeys and no plan, so its
// Handle reports the mapping error.
func (h *Handler) PlanKeys(ev event.Event) ([]string, func(context.Context) context.Context) {
	intents, err := h.mapper.Map(ev)
	if err != nil {
		return h.mapper.Keys(ev), nil
	}
	var keys []string
	for _, in := range intents {
		if k := in.Key(); !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	p := &plan{source: ev.Source(), id: ev.ID(), intents: intents}
	return keys, func(ctx context.Context) context.Context { return context.WithValue(ctx, planKey{}, p) }
}

// plan is the mapping of one event, made by PlanKeys.
type plan struct {
	source, id string
	intents    []Intent
}

type planKey struct{}

// Report says what happened to each intent of an event.
type Report struct {
	// Intents has one entry per intent, in the order given.
	Intents []IntentReport
	// Calls counts every Zoho call made, each once.
	Calls Calls
}

// IntentReport is what happened to one intent.
type IntentReport struct {
	Rule     string
	Module   string
	RecordID string
	Action   Action
	// Outcome is how the intent ended; zero when Err is set.
	Outcome Outcome
	// Recipients is the outcome per resolved recipient (grant, revoke, set).
	Recipients []RecipientReport
	// Calls are the Zoho calls of the write this intent was part of. When several
	// intents of the event touched the same record they were merged into one
	// write, and each of them reports that write's calls; Merged says how many.
	Calls Calls
	// Merged is the number of intents (this one included) carried out together.
	Merged int
	// Err is why the intent failed, an *Error; nil on success.
	Err error
}

// RecipientReport is the outcome for one recipient of an intent.
type RecipientReport struct {
	Recipient zoho.Recipient // resolved; ID empty for an email that matches no user
	Email     string         // as the intent gave it, if it named the recipient by email
	Outcome   Outcome
}

// Calls counts Zoho calls by method.
type Calls struct {
	Get    int // GET …/actions/share
	Post   int // POST …/actions/share
	Put    int // PUT …/actions/share
	Delete int // DELETE …/actions/share
	Users  int // Directory lookups (the client may answer them from its cache)
}

// Share returns the number of calls to the share endpoint (all but Users).
func (c Calls) Share() int { return c.Get + c.Post + c.Put + c.Delete }

func (c *Calls) add(o Calls) {
	c.Get += o.Get
	c.Post += o.Post
	c.Put += o.Put
	c.Delete += o.Delete
	c.Users += o.Users
}
