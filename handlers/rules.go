package handlers

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"

	"cel.dev/cel-go/cel"
	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/crmshare/crmshare/zoho"
)

// DefaultCostLimit is the CEL cost budget of one expression evaluation when
// RulesConfig.CostLimit is 0. It is far above what a rule over a normal event
// needs (a filter over a 100-element list costs a few hundred) and low enough
// that no expression can keep a worker busy for more than a few milliseconds.
const DefaultCostLimit uint64 = 1_000_000

// DefaultPermission is the permission of a grant or set recipient whose config
// entry names none. Zoho's own default is full_access (which lets the recipient
// delete the record); read_only is the safe choice, so a rule must ask for more.
const DefaultPermission = zoho.PermissionReadOnly

// Zoho's per-request caps on recipients (zoho-share-api.md §6), checked on
// literal lists at load time; merged lists are the share handler's business.
const (
	maxUsersPerShare  = 10
	maxGroupsPerShare = 5
	maxRolesPerShare  = 5
)

// RulesConfig configures the rules engine. The zero value is a valid engine
// without rules (every event maps to no intent).
type RulesConfig struct {
	// Rules in the order their intents come out when several match one event.
	Rules []RuleConfig
	// APIVersion is the Zoho API dialect the intents are for: "v2", "v2.1" or
	// "v8". Empty means "v8". Group and role recipients need "v8".
	APIVersion string
	// CostLimit caps the CEL cost of evaluating one expression; 0 means
	// DefaultCostLimit.
	CostLimit uint64
}

// RuleConfig is one rule as written in the config file: which events it
// matches and the intent it makes of them. Expressions are CEL over the
// variables event (the CloudEvent's attributes) and data (its JSON payload).
type RuleConfig struct {
	// Name identifies the rule in intents, logs and dead letters. Required,
	// unique; letters, digits, '.', '_', ':' and '-'.
	Name string
	// Type is on.type: the CloudEvent type, exact ("deal.assigned") or a glob
	// as in path.Match ("deal.*"). Required; "*" matches every type.
	Type string
	// Source is on.source: a glob the event's source must match; empty means any.
	Source string
	// Subject is on.subject: a glob the event's subject must match; empty means
	// any. Globs follow path.Match: '*' does not cross '/'.
	Subject string
	// When is an optional CEL condition (bool); empty means always.
	When string
	// Action is "grant", "revoke", "set" or "revoke_all". Required.
	Action string
	// Module is the Zoho module API name, a literal such as "Deals". Required.
	Module string
	// RecordID is a CEL expression giving the record ID as a string. Required.
	RecordID string
	// Recipients says who gets (or loses) access; none for revoke_all, at least
	// one entry for grant and revoke; set may have none (= remove every direct share).
	Recipients []RecipientConfig
	// Line is where the rule starts in the config file; 0 means unknown.
	Line int
	// Lines maps a key ("on.type", "when", "record_id", ...) to its line in the
	// config file, for error messages; nil means unknown (Line is used).
	Lines map[string]int
}

// RecipientConfig is one entry of a rule's recipients. Exactly one of User,
// Email, Group and Role is set: a CEL expression giving one value (a string)
// or a list of strings. A null or empty result means no recipient.
type RecipientConfig struct {
	User  string // CEL: Zoho user IDs
	Email string // CEL: emails, resolved to user IDs by the share handler
	Group string // CEL: Zoho group IDs (v8 only)
	Role  string // CEL: Zoho role IDs (v8 only)
	// Permission is "read_only", "read_write" or "full_access"; empty means
	// DefaultPermission. Ignored by revoke.
	Permission string
	// ShareRelated is Zoho's share_related_records; ignored by revoke.
	ShareRelated bool
	// Line is where the entry starts in the config file; 0 means unknown.
	Line int
}

// Rules maps CloudEvents to share intents. Every expression is compiled and
// type-checked once by NewRules; Map and Keys are pure (no I/O, no clock) and
// safe for concurrent use.
type Rules struct {
	rules []*rule
	exact map[string][]int // event type -> indexes of rules with that exact type, in rule order
	globs []int            // indexes of rules whose type is a glob, in rule order
}

// rule is a compiled RuleConfig.
type rule struct {
	name             string
	typ              string
	source, subject  string
	when             *expr // nil = always
	action           Action
	module           string
	recordID         *expr
	recipients       []recipient
	hasAttrCondition bool
}

// recipient is a compiled RecipientConfig.
type recipient struct {
	field        string // "recipients[1].email", for errors
	kind         recipientKind
	expr         *expr
	permission   zoho.Permission
	shareRelated bool
}

type recipientKind int

const (
	kindUser recipientKind = iota + 1
	kindEmail
	kindGroup
	kindRole
)

var recipientKindNames = map[recipientKind]string{
	kindUser:  "user",
	kindEmail: "email",
	kindGroup: "group",
	kindRole:  "role",
}

var (
	ruleNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]*$`)
	moduleRE   = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)
)

// NewRules compiles and validates cfg. It reports every problem at once
// (errors.Join), each naming the rule, the field and, when known, the line.
func NewRules(cfg RulesConfig) (*Rules, error) {
	cfg.setDefaults()
	errs := cfg.validate()
	env, err := newCELEnv()
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	r := &Rules{exact: make(map[string][]int)}
	for i := range cfg.Rules {
		ru, rerrs := compileRule(env, cfg, i)
		errs = append(errs, rerrs...)
		if ru == nil {
			continue
		}
		idx := len(r.rules)
		r.rules = append(r.rules, ru)
		if isGlob(ru.typ) {
			r.globs = append(r.globs, idx)
		} else {
			r.exact[ru.typ] = append(r.exact[ru.typ], idx)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return r, nil
}

func (c *RulesConfig) setDefaults() {
	if c.APIVersion == "" {
		c.APIVersion = "v8"
	}
	if c.CostLimit == 0 {
		c.CostLimit = DefaultCostLimit
	}
}

// Validate reports the problems that need no compilation: the API version and
// duplicate rule names. NewRules reports these and everything else.
func (c RulesConfig) Validate() error { return errors.Join(c.validate()...) }

func (c RulesConfig) validate() []error {
	var errs []error
	switch c.APIVersion {
	case "", "v2", "v2.1", "v8":
	default:
		errs = append(errs, &RuleConfigError{Index: -1, Field: "api_version", Err: fmt.Errorf("%q: want v2, v2.1 or v8", c.APIVersion)})
	}
	seen := make(map[string]int)
	for i, rc := range c.Rules {
		if rc.Name == "" {
			continue
		}
		if j, ok := seen[rc.Name]; ok {
			errs = append(errs, rc.problem(i, "name", fmt.Errorf("duplicate rule name (also rules[%d])", j)))
			continue
		}
		seen[rc.Name] = i
	}
	return errs
}

// Len reports how many rules there are.
func (r *Rules) Len() int { return len(r.rules) }

// Names returns the rule names in order.
func (r *Rules) Names() []string {
	names := make([]string, len(r.rules))
	for i, ru := range r.rules {
		names[i] = ru.name
	}
	return names
}

// compileRule compiles rules[i]; it returns nil and the problems when the rule
// cannot be used.
func compileRule(env *cel.Env, cfg RulesConfig, i int) (*rule, []error) {
	rc := cfg.Rules[i]
	var errs []error
	bad := func(field string, err error) { errs = append(errs, rc.problem(i, field, err)) }

	if rc.Name == "" {
		bad("name", errors.New("required"))
	} else if !ruleNameRE.MatchString(rc.Name) {
		bad("name", fmt.Errorf("%q: use letters, digits, '.', '_', ':' or '-'", rc.Name))
	}
	if rc.Type == "" {
		bad("on.type", errors.New(`required (write "*" to match every type)`))
	} else if err := checkGlob(rc.Type); err != nil {
		bad("on.type", err)
	}
	if err := checkGlob(rc.Source); err != nil {
		bad("on.source", err)
	}
	if err := checkGlob(rc.Subject); err != nil {
		bad("on.subject", err)
	}
	action, err := ParseAction(rc.Action)
	if rc.Action == "" {
		bad("action", errors.New("required (grant, revoke, set or revoke_all)"))
	} else if err != nil {
		bad("action", err)
	}
	if rc.Module == "" {
		bad("module", errors.New("required (a module API name such as Deals)"))
	} else if !moduleRE.MatchString(rc.Module) {
		bad("module", fmt.Errorf("%q is not a module API name", rc.Module))
	}

	ru := &rule{
		name:    rc.Name,
		typ:     rc.Type,
		source:  rc.Source,
		subject: rc.Subject,
		action:  action,
		module:  rc.Module,
	}
	ru.hasAttrCondition = ru.source != "" || ru.subject != ""
	if rc.When != "" {
		ru.when, err = compileExpr(env, rc.When, cfg.CostLimit, outBool)
		if err != nil {
			bad("when", err)
		}
	}
	if rc.RecordID == "" {
		bad("record_id", errors.New("required (a CEL expression such as data.deal_id)"))
	} else {
		ru.recordID, err = compileExpr(env, rc.RecordID, cfg.CostLimit, outString)
		if err != nil {
			bad("record_id", err)
		}
	}

	switch {
	case action == ActionRevokeAll && len(rc.Recipients) > 0:
		bad("recipients", errors.New("revoke_all takes no recipients"))
	case (action == ActionGrant || action == ActionRevoke) && len(rc.Recipients) == 0:
		bad("recipients", fmt.Errorf("%s needs at least one entry", action))
	}
	for j, rcp := range rc.Recipients {
		field := fmt.Sprintf("recipients[%d]", j)
		line := rcp.Line
		badR := func(sub string, err error) {
			f := field
			if sub != "" {
				f += "." + sub
			}
			errs = append(errs, rc.problemAt(i, f, line, err))
		}
		kind, src, n := rcp.kind()
		if n != 1 {
			badR("", errors.New("set exactly one of user, email, group or role"))
			continue
		}
		name := recipientKindNames[kind]
		if (kind == kindGroup || kind == kindRole) && cfg.APIVersion != "v8" {
			badR(name, fmt.Errorf("%s recipients need api_version v8 (configured: %s)", name, cfg.APIVersion))
		}
		rp := recipient{field: field + "." + name, kind: kind, permission: DefaultPermission, shareRelated: rcp.ShareRelated}
		if rcp.Permission != "" {
			p, err := zoho.ParsePermission(rcp.Permission)
			if err != nil {
				badR("permission", err)
			}
			rp.permission = p
		}
		if action == ActionRevoke {
			rp.permission = 0
			rp.shareRelated = false
		}
		rp.expr, err = compileExpr(env, src, cfg.CostLimit, outIDs)
		if err != nil {
			badR(name, err)
		} else if size, limit := literalListLen(rp.expr), kindLimit(kind); limit > 0 && size > limit {
			badR(name, fmt.Errorf("lists %d %ss; Zoho takes at most %d per share", size, name, limit))
		}
		ru.recipients = append(ru.recipients, rp)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return ru, nil
}

// kind returns the recipient's kind and expression, and how many of the four
// were set.
func (rc RecipientConfig) kind() (recipientKind, string, int) {
	var (
		k   recipientKind
		src string
		n   int
	)
	for _, c := range []struct {
		k   recipientKind
		src string
	}{{kindUser, rc.User}, {kindEmail, rc.Email}, {kindGroup, rc.Group}, {kindRole, rc.Role}} {
		if strings.TrimSpace(c.src) != "" {
			k, src, n = c.k, c.src, n+1
		}
	}
	return k, src, n
}

func kindLimit(k recipientKind) int {
	switch k {
	case kindUser, kindEmail:
		return maxUsersPerShare
	case kindGroup:
		return maxGroupsPerShare
	case kindRole:
		return maxRolesPerShare
	}
	return 0
}

// problem wraps err with where it is, taking the line from Lines[field] or Line.
func (rc RuleConfig) problem(i int, field string, err error) error {
	line := rc.Line
	if l, ok := rc.Lines[field]; ok && l > 0 {
		line = l
	}
	return rc.problemAt(i, field, line, err)
}

func (rc RuleConfig) problemAt(i int, field string, line int, err error) error {
	if line <= 0 {
		line = rc.Line
	}
	return &RuleConfigError{Index: i, Rule: rc.Name, Field: field, Line: line, Err: err}
}

// isGlob reports whether pattern has path.Match metacharacters.
func isGlob(pattern string) bool { return strings.ContainsAny(pattern, `*?[\`) }

// checkGlob reports a malformed path.Match pattern.
func checkGlob(pattern string) error {
	if _, err := path.Match(pattern, ""); err != nil {
		return fmt.Errorf("bad glob %q: %w", pattern, err)
	}
	return nil
}

// globMatch matches a validated pattern; empty matches anything.
func globMatch(pattern, s string) bool {
	if pattern == "" {
		return true
	}
	ok, _ := path.Match(pattern, s)
	return ok
}

// candidates returns the indexes, in rule order, of the rules whose type
// matches typ. Exact types are a map lookup; only glob rules are scanned.
func (r *Rules) candidates(typ string) []int {
	exact := r.exact[typ]
	if len(r.globs) == 0 {
		return exact
	}
	var globs []int
	for _, i := range r.globs {
		if globMatch(r.rules[i].typ, typ) {
			globs = append(globs, i)
		}
	}
	if len(globs) == 0 {
		return exact
	}
	if len(exact) == 0 {
		return globs
	}
	out := make([]int, 0, len(exact)+len(globs))
	out = append(out, exact...)
	out = append(out, globs...)
	slices.Sort(out)
	return out
}

// Map turns ev into the intents of every rule it matches, in rule order, each
// tagged with its rule's name. An event that matches no rule yields no intents
// and no error. A rule that matches but cannot be evaluated (a missing field,
// a wrong type, an empty or malformed record ID) makes Map return a
// *RuleError, which is permanent. Map does no I/O and reads no clock.
func (r *Rules) Map(ev cloudevents.Event) ([]Intent, error) {
	cands := r.candidates(ev.Type())
	if len(cands) == 0 {
		return nil, nil
	}
	var (
		in  input
		out []Intent
	)
	for _, i := range cands {
		ru := r.rules[i]
		if !ru.matchAttrs(ev) {
			continue
		}
		act, err := in.activation(ev)
		if err != nil {
			return nil, &RuleError{RuleName: ru.name, Field: "data", Err: err}
		}
		intent, ok, err := ru.eval(act)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, intent)
		}
	}
	return out, nil
}

// Keys returns the "Module/RecordID" keys of the records ev's intents would
// touch, without duplicates, for per-record ordering. It is best effort: a rule
// that cannot be evaluated is skipped (Map reports it).
func (r *Rules) Keys(ev cloudevents.Event) []string {
	cands := r.candidates(ev.Type())
	var (
		in   input
		keys []string
	)
	for _, i := range cands {
		ru := r.rules[i]
		if !ru.matchAttrs(ev) {
			continue
		}
		act, err := in.activation(ev)
		if err != nil {
			return keys
		}
		if ok, err := ru.condition(act); err != nil || !ok {
			continue
		}
		id, err := ru.evalRecordID(act)
		if err != nil {
			continue
		}
		key := ru.module + "/" + id
		if !slices.Contains(keys, key) {
			keys = append(keys, key)
		}
	}
	return keys
}

// matchAttrs checks the source and subject globs.
func (ru *rule) matchAttrs(ev cloudevents.Event) bool {
	if !ru.hasAttrCondition {
		return true
	}
	return globMatch(ru.source, ev.Source()) && globMatch(ru.subject, ev.Subject())
}

// condition evaluates when.
func (ru *rule) condition(act activation) (bool, error) {
	if ru.when == nil {
		return true, nil
	}
	v, err := ru.when.eval(act)
	if err != nil {
		return false, ru.errorf("when", ru.when, err)
	}
	b, err := asBool(v)
	if err != nil {
		return false, ru.errorf("when", ru.when, err)
	}
	return b, nil
}

func (ru *rule) evalRecordID(act activation) (string, error) {
	v, err := ru.recordID.eval(act)
	if err != nil {
		return "", ru.errorf("record_id", ru.recordID, err)
	}
	id, err := asZohoID(v)
	if err != nil {
		return "", ru.errorf("record_id", ru.recordID, err)
	}
	return id, nil
}

// eval makes the rule's intent; ok is false when the condition is false or a
// grant or revoke ends up with no recipient.
func (ru *rule) eval(act activation) (Intent, bool, error) {
	ok, err := ru.condition(act)
	if err != nil || !ok {
		return Intent{}, false, err
	}
	id, err := ru.evalRecordID(act)
	if err != nil {
		return Intent{}, false, err
	}
	in := Intent{Rule: ru.name, Module: ru.module, RecordID: id, Action: ru.action}
	for _, rp := range ru.recipients {
		field := rp.field
		v, err := rp.expr.eval(act)
		if err != nil {
			return Intent{}, false, ru.errorf(field, rp.expr, err)
		}
		values, err := asStrings(v)
		if err != nil {
			return Intent{}, false, ru.errorf(field, rp.expr, err)
		}
		for _, s := range values {
			g := Grant{Permission: rp.permission, ShareRelated: rp.shareRelated}
			switch rp.kind {
			case kindEmail:
				if err := checkEmail(s); err != nil {
					return Intent{}, false, ru.errorf(field, rp.expr, err)
				}
				g.Recipient.Type, g.Email = zoho.RecipientUser, s
			default:
				if err := checkZohoID(s); err != nil {
					return Intent{}, false, ru.errorf(field, rp.expr, err)
				}
				g.Recipient = zoho.Recipient{Type: rp.kind.recipientType(), ID: s}
			}
			in.Recipients = append(in.Recipients, g)
		}
	}
	if len(in.Recipients) == 0 && (ru.action == ActionGrant || ru.action == ActionRevoke) {
		return Intent{}, false, nil
	}
	return in, true, nil
}

func (k recipientKind) recipientType() zoho.RecipientType {
	switch k {
	case kindGroup:
		return zoho.RecipientGroup
	case kindRole:
		return zoho.RecipientRole
	}
	return zoho.RecipientUser
}

func (ru *rule) errorf(field string, e *expr, err error) error {
	return &RuleError{RuleName: ru.name, Field: field, Expr: e.src, Err: err}
}
