package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/crmshare/crmshare/zoho"
)

var (
	shareModuleRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,99}$`)
	shareIDRE     = regexp.MustCompile(`^[0-9]{1,19}$`)
)

// unshareable are modules Zoho shares only through a parent's related records
// (contract §1): naming them in the URL gets OAUTH_SCOPE_MISMATCH.
var unshareable = map[string]bool{"Activities": true, "Tasks": true, "Events": true, "Calls": true, "Meetings": true}

// ApplyIntents carries out intents, as if one after another, and reports what
// happened to each.
//
// Intents for the same record are applied under the record's lock, and
// several intents of the call for one record are merged into one write: grants
// only into one POST; anything else into one GET plus at most one PUT (or one
// DELETE when no direct share would remain); a trailing revoke_all into one
// DELETE. Intents for different records are independent: a failure on one does
// not stop the others, except a *zoho.CredentialsError or the end of ctx, which
// stop the rest (they would fail the same way).
//
// Recipients named twice in one intent are merged so that the most access wins:
// the highest permission, with share_related_records if any of them asks for it.
// Across intents the later intent wins, as if they ran one after another.
//
// A grant or set recipient who already sees the record through another
// record's related-records share (an inherited entry) and has no direct share
// is left alone and reported already_accessible: only direct shares are ever
// written.
//
// The error is nil when every intent succeeded; otherwise see Handle.
func (h *Handler) ApplyIntents(ctx context.Context, intents []Intent) (Report, error) {
	rep := Report{Intents: make([]IntentReport, len(intents))}
	for i, in := range intents {
		rep.Intents[i] = IntentReport{Rule: in.Rule, Module: in.Module, RecordID: in.RecordID, Action: in.Action}
	}
	var errs []error
	var stop error
	for _, idx := range groupByRecord(intents) {
		if stop == nil {
			if err := ctx.Err(); err != nil {
				stop = &Error{class: classRetryable, err: err}
				errs = append(errs, stop)
			}
		}
		if stop != nil {
			for _, i := range idx {
				rep.Intents[i].Err = stop
				h.count(ctx, intents[i].Action, "error")
			}
			continue
		}
		calls, gerrs := h.applyGroup(ctx, intents, idx, &rep)
		rep.Calls.add(calls)
		errs = append(errs, gerrs...)
		for _, err := range gerrs {
			var ce *zoho.CredentialsError
			if errors.As(err, &ce) {
				stop = err
			}
		}
	}
	return rep, joinErrors(errs)
}

// groupByRecord returns the indexes of the intents of each record, records in
// order of first appearance, intents in their given order.
func groupByRecord(intents []Intent) [][]int {
	var groups [][]int
	pos := make(map[string]int)
	for i, in := range intents {
		k := in.Key()
		g, ok := pos[k]
		if !ok {
			g = len(groups)
			pos[k] = g
			groups = append(groups, nil)
		}
		groups[g] = append(groups[g], i)
	}
	return groups
}

// joinErrors puts credentials errors first, then retryable ones, so that a
// consumer's errors.As finds the one that should decide the message's fate.
func joinErrors(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	rank := func(err error) int {
		var ce *zoho.CredentialsError
		var r interface{ Retryable() bool }
		switch {
		case errors.As(err, &ce):
			return 0
		case errors.As(err, &r) && r.Retryable():
			return 1
		}
		return 2
	}
	slices.SortStableFunc(errs, func(a, b error) int { return rank(a) - rank(b) })
	return errors.Join(errs...)
}

// recordRun is the work on one record within one ApplyIntents call.
type recordRun struct {
	h        *Handler
	module   string
	recordID string
	rules    string // distinct rules of the merged intents, for errors about the whole write
	action   Action // the merged intents' action when they share one, else 0
	calls    Calls
}

// resolvedIntent is a valid intent whose recipients are resolved to IDs and merged.
type resolvedIntent struct {
	k       int // position in the record's group
	in      Intent
	grants  []resolvedGrant
	skipped []RecipientReport // revoked emails that match no active user
}

type resolvedGrant struct {
	r      zoho.Recipient
	email  string
	a      access
	rule   string
	action Action
}

func (g resolvedGrant) label() string {
	if g.email != "" {
		return g.email + " (" + g.r.String() + ")"
	}
	return g.r.String()
}

// applyGroup carries out the intents idx of one record and fills their reports.
func (h *Handler) applyGroup(ctx context.Context, intents []Intent, idx []int, rep *Report) (Calls, []error) {
	first := intents[idx[0]]
	r := &recordRun{h: h, module: first.Module, recordID: first.RecordID, action: first.Action}
	var rules []string
	for _, i := range idx {
		if !slices.Contains(rules, intents[i].Rule) {
			rules = append(rules, intents[i].Rule)
		}
		if intents[i].Action != r.action {
			r.action = 0
		}
	}
	r.rules = strings.Join(rules, ",")

	// One span per intent. The Zoho calls run under the first one; the others
	// link to it, since they were carried out by the same calls. Attributes
	// go only on spans that record (the samplers in use decide by parent and
	// trace ID alone): with tracing off they were allocations for nothing.
	spans := make([]trace.Span, len(idx))
	var callCtx context.Context
	for k, i := range idx {
		in := intents[i]
		opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindInternal)}
		if k > 0 {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: spans[0].SpanContext()}))
		}
		sctx, span := h.tracer.Start(ctx, "share "+in.Module, opts...)
		if span.IsRecording() {
			span.SetAttributes(
				attribute.String("crmshare.rule", in.Rule),
				attribute.String("crmshare.action", in.Action.String()),
				attribute.String("crmshare.module", in.Module),
				attribute.String("crmshare.record_id", in.RecordID),
				attribute.Int("crmshare.recipient_count", len(in.Recipients)),
			)
		}
		if k == 0 {
			callCtx = sctx
		}
		spans[k] = span
	}

	outcomes := make([]Outcome, len(idx))
	recips := make([][]RecipientReport, len(idx))
	intentErrs := make([]error, len(idx))
	var errs []error

	var ris []*resolvedIntent
	for k, i := range idx {
		ri, err := h.resolve(callCtx, intents[i], &r.calls)
		if err != nil {
			intentErrs[k] = err
			errs = append(errs, err)
			continue
		}
		ri.k = k
		ris = append(ris, ri)
	}
	if len(ris) > 0 {
		var werrs []error
		unlock, err := h.locks.lock(callCtx, first.Key())
		if err != nil {
			werrs = []error{r.errorf(nil, classRetryable, err)}
		} else {
			werrs = r.execute(callCtx, ris, outcomes, recips)
			unlock()
		}
		errs = append(errs, werrs...)
		if werr := joinErrors(werrs); werr != nil {
			for _, ri := range ris {
				intentErrs[ri.k] = werr
			}
		}
	}

	for k, i := range idx {
		ir := &rep.Intents[i]
		ir.Calls = r.calls
		ir.Merged = len(idx)
		span := spans[k]
		if err := intentErrs[k]; err != nil {
			ir.Err = err
			span.SetAttributes(attribute.String("crmshare.outcome", "error"))
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
			h.count(ctx, ir.Action, "error")
		} else {
			ir.Outcome = outcomes[k]
			ir.Recipients = recips[k]
			if span.IsRecording() {
				span.SetAttributes(attribute.String("crmshare.outcome", ir.Outcome.String()))
			}
			h.count(ctx, ir.Action, ir.Outcome.String())
			if h.logger.Enabled(ctx, slog.LevelDebug) {
				h.logger.LogAttrs(ctx, slog.LevelDebug, "share intent done",
					slog.String("rule", ir.Rule), slog.String("module", ir.Module), slog.String("record_id", ir.RecordID),
					slog.String("action", ir.Action.String()), slog.String("outcome", ir.Outcome.String()),
					slog.Int("share_calls", r.calls.Share()), slog.Int("merged", len(idx)))
			}
		}
		span.End()
	}
	h.countCalls(ctx, ris, r.calls)
	return r.calls, errs
}

// callLabels are the labels of crmshare.share_calls; action 0 is "mixed".
type callLabels struct {
	action Action
	method string
}

// countCalls adds the share calls made for the intents ris to
// crmshare.share_calls, under their action, or mixed.
func (h *Handler) countCalls(ctx context.Context, ris []*resolvedIntent, c Calls) {
	var a Action
	for i, ri := range ris {
		if i == 0 {
			a = ri.in.Action
		} else if ri.in.Action != a {
			a = 0
		}
	}
	for _, mc := range [...]struct {
		method string
		n      int
	}{{http.MethodGet, c.Get}, {http.MethodPost, c.Post}, {http.MethodPut, c.Put}, {http.MethodDelete, c.Delete}} {
		if mc.n > 0 {
			h.calls.Add(ctx, int64(mc.n), h.callAttrs[callLabels{a, mc.method}])
		}
	}
}

// callAttrSets builds the attribute set of every action (and mixed) with
// every method of the share endpoint.
func callAttrSets() map[callLabels]metric.MeasurementOption {
	m := make(map[callLabels]metric.MeasurementOption)
	actions := map[Action]string{0: "mixed"}
	for a, name := range actionNames {
		actions[a] = name
	}
	for a, action := range actions {
		for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete} {
			m[callLabels{a, method}] = metric.WithAttributeSet(attribute.NewSet(
				attribute.String("action", action), attribute.String("method", method)))
		}
	}
	return m
}

func (h *Handler) count(ctx context.Context, a Action, outcome string) {
	o, ok := h.intentAttrs[intentLabels{a, outcome}]
	if !ok {
		o = metric.WithAttributes(attribute.String("action", a.String()), attribute.String("outcome", outcome))
	}
	h.intents.Add(ctx, 1, o)
}

// intentAttrSets builds the attribute set of every action with every
// outcome, and with "error".
func intentAttrSets() map[intentLabels]metric.MeasurementOption {
	outcomes := []string{"error"}
	for _, name := range outcomeNames {
		outcomes = append(outcomes, name)
	}
	m := make(map[intentLabels]metric.MeasurementOption, len(actionNames)*len(outcomes))
	for a, action := range actionNames {
		for _, outcome := range outcomes {
			m[intentLabels{a, outcome}] = metric.WithAttributeSet(attribute.NewSet(
				attribute.String("action", action), attribute.String("outcome", outcome)))
		}
	}
	return m
}

// validate checks what can be checked without Zoho.
func (h *Handler) validate(in Intent) error {
	var probs []string
	switch {
	case !shareModuleRE.MatchString(in.Module):
		probs = append(probs, fmt.Sprintf("module %q is not a module API name", in.Module))
	case unshareable[in.Module]:
		probs = append(probs, fmt.Sprintf("module %s is shared only through a parent record", in.Module))
	}
	if !shareIDRE.MatchString(in.RecordID) {
		probs = append(probs, fmt.Sprintf("record ID %q is not a Zoho ID", in.RecordID))
	}
	if in.Action < ActionGrant || in.Action > ActionRevokeAll {
		probs = append(probs, fmt.Sprintf("unknown action %d", int(in.Action)))
	}
	if in.Action == ActionRevokeAll && len(in.Recipients) > 0 {
		probs = append(probs, "revoke_all takes no recipients")
	}
	for i, g := range in.Recipients {
		switch {
		case g.Email != "" && g.Recipient.ID != "":
			probs = append(probs, fmt.Sprintf("recipient %d has both an email and an ID", i))
		case g.Email == "" && g.Recipient.ID == "":
			probs = append(probs, fmt.Sprintf("recipient %d has neither an email nor an ID", i))
		case g.Email != "":
			if g.Recipient.Type != 0 && g.Recipient.Type != zoho.RecipientUser {
				probs = append(probs, fmt.Sprintf("recipient %d: an email names a user, not %s", i, g.Recipient.Type))
			}
			if !strings.Contains(g.Email, "@") {
				probs = append(probs, fmt.Sprintf("recipient %d: %q is not an email", i, g.Email))
			}
		default:
			switch g.Recipient.Type {
			case zoho.RecipientUser:
			case zoho.RecipientGroup, zoho.RecipientRole:
				if h.version != "v8" {
					probs = append(probs, fmt.Sprintf("recipient %s: groups and roles need API v8, not %s", g.Recipient, h.version))
				}
			default:
				probs = append(probs, fmt.Sprintf("recipient %d: unknown type %d", i, int(g.Recipient.Type)))
			}
			if !shareIDRE.MatchString(g.Recipient.ID) {
				probs = append(probs, fmt.Sprintf("recipient %d: %q is not a Zoho ID", i, g.Recipient.ID))
			}
		}
		if in.Action != ActionRevoke {
			if _, err := g.Permission.MarshalText(); err != nil {
				probs = append(probs, fmt.Sprintf("recipient %d: permission %d is not read_only, read_write or full_access", i, int(g.Permission)))
			}
		}
	}
	if len(probs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrInvalidIntent, strings.Join(probs, "; "))
}

// resolve validates the intent, resolves emails to user IDs, checks that user IDs
// name active, confirmed users (except for revoke, which may take access from
// anyone) and merges duplicate recipients.
func (h *Handler) resolve(ctx context.Context, in Intent, calls *Calls) (*resolvedIntent, error) {
	fail := func(recipient string, class errClass, err error) error {
		return &Error{rule: in.Rule, action: in.Action, module: in.Module, recordID: in.RecordID,
			recipient: recipient, class: class, err: err}
	}
	if err := h.validate(in); err != nil {
		return nil, fail("", classPermanent, err)
	}
	ri := &resolvedIntent{in: in}
	index := make(map[zoho.Recipient]int, len(in.Recipients))
	for _, g := range in.Recipients {
		rc := g.Recipient
		switch {
		case g.Email != "":
			calls.Users++
			u, err := h.dir.UserByEmail(ctx, g.Email)
			if err == nil && !u.Active() {
				err = fmt.Errorf("user %s is %s, confirmed=%t: %w", u.ID, u.Status, u.Confirm, zoho.ErrUserNotFound)
			}
			if err != nil {
				if in.Action == ActionRevoke && errors.Is(err, zoho.ErrUserNotFound) {
					// Nobody to take access from: a user who is not active and
					// confirmed cannot see the record.
					ri.skipped = append(ri.skipped, RecipientReport{
						Recipient: zoho.Recipient{Type: zoho.RecipientUser}, Email: g.Email, Outcome: OutcomeUnchanged})
					continue
				}
				return nil, fail(g.Email, classFromCause, fmt.Errorf("resolve email: %w", err))
			}
			rc = zoho.Recipient{Type: zoho.RecipientUser, ID: u.ID}
		case rc.Type == zoho.RecipientUser && in.Action != ActionRevoke:
			calls.Users++
			u, err := h.dir.UserByID(ctx, rc.ID)
			if err == nil && !u.Active() {
				err = fmt.Errorf("user is %s, confirmed=%t: %w", u.Status, u.Confirm, zoho.ErrUserNotFound)
			}
			if err != nil {
				return nil, fail(rc.String(), classFromCause, fmt.Errorf("check user: %w", err))
			}
		}
		a := access{perm: g.Permission, related: g.ShareRelated}
		if j, ok := index[rc]; ok {
			prev := &ri.grants[j]
			prev.a.perm = max(prev.a.perm, a.perm)
			prev.a.related = prev.a.related || a.related
			continue
		}
		index[rc] = len(ri.grants)
		ri.grants = append(ri.grants, resolvedGrant{r: rc, email: g.Email, a: a, rule: in.Rule, action: in.Action})
	}
	if in.Action == ActionGrant || in.Action == ActionSet {
		l := newShareList()
		for _, g := range ri.grants {
			l.set(g.r, g.a)
		}
		if err := h.limits.check(l.counts()); err != nil {
			return nil, fail("", classPermanent, fmt.Errorf("too many recipients: %w", err))
		}
	}
	return ri, nil
}

// errorf makes an error about the record; g names the recipient when there is one.
func (r *recordRun) errorf(g *resolvedGrant, class errClass, err error) *Error {
	e := &Error{rule: r.rules, action: r.action, module: r.module, recordID: r.recordID, class: class, err: err}
	if g != nil {
		e.rule, e.action, e.recipient = g.rule, g.action, g.label()
	}
	return e
}

// execute carries out the record's valid intents under its lock and, when it
// succeeds, fills their outcomes.
func (r *recordRun) execute(ctx context.Context, ris []*resolvedIntent, outcomes []Outcome, recips [][]RecipientReport) []error {
	allGrants := true
	for _, ri := range ris {
		allGrants = allGrants && ri.in.Action == ActionGrant
	}
	switch {
	case allGrants:
		gs := mergeGrants(ris)
		out, errs := r.grant(ctx, gs)
		if len(errs) > 0 {
			return errs
		}
		for _, ri := range ris {
			reps := slices.Clone(ri.skipped)
			for _, g := range ri.grants {
				reps = append(reps, RecipientReport{Recipient: g.r, Email: g.email, Outcome: out[g.r]})
			}
			outcomes[ri.k], recips[ri.k] = summarize(reps, false), reps
		}
	case ris[len(ris)-1].in.Action == ActionRevokeAll:
		// Whatever came before, the record ends with no direct shares.
		wrote, err := r.revokeAll(ctx)
		if err != nil {
			return []error{err}
		}
		o := OutcomeUnchanged
		if wrote {
			o = OutcomeApplied
		}
		for _, ri := range ris {
			reps := slices.Clone(ri.skipped)
			for _, g := range ri.grants {
				reps = append(reps, RecipientReport{Recipient: g.r, Email: g.email, Outcome: o})
			}
			outcomes[ri.k], recips[ri.k] = o, reps
		}
	default:
		res, errs := r.converge(ctx, ris)
		if len(errs) > 0 {
			return errs
		}
		for _, ri := range ris {
			outcomes[ri.k], recips[ri.k] = res.outcome(ri)
		}
	}
	return nil
}

// mergeGrants folds grant intents into one list: the later intent wins.
func mergeGrants(ris []*resolvedIntent) []resolvedGrant {
	var out []resolvedGrant
	index := make(map[zoho.Recipient]int)
	for _, ri := range ris {
		for _, g := range ri.grants {
			if j, ok := index[g.r]; ok {
				out[j] = g
				continue
			}
			index[g.r] = len(out)
			out = append(out, g)
		}
	}
	return out
}

// summarize is an intent's outcome from its recipients': applied if anything
// was written for it, else already_accessible if any recipient sees the record
// some other way, else unchanged.
func summarize(reps []RecipientReport, applied bool) Outcome {
	accessible := false
	for _, rr := range reps {
		switch rr.Outcome {
		case OutcomeApplied:
			applied = true
		case OutcomeAlreadyAccessible:
			accessible = true
		}
	}
	switch {
	case applied:
		return OutcomeApplied
	case accessible:
		return OutcomeAlreadyAccessible
	}
	return OutcomeUnchanged
}
