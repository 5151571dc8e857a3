package handlers

import (
	"fmt"
	"strings"
)

// RuleError is a rule that matched an event but could not be evaluated on it:
// a missing field, a value of the wrong type, an empty or malformed record ID,
// a payload that is not valid JSON. It is permanent: the rules are pure, so
// redelivering the event would fail the same way.
type RuleError struct {
	RuleName string // the rule's name
	Field    string // "when", "record_id", "recipients[1].email" or "data"
	Expr     string // the CEL expression, empty for Field "data"
	Err      error
}

// Error names the rule, the field and the expression.
func (e *RuleError) Error() string {
	if e.Expr == "" {
		return fmt.Sprintf("rule %q: %s: %v", e.RuleName, e.Field, e.Err)
	}
	return fmt.Sprintf("rule %q: %s (%s): %v", e.RuleName, e.Field, e.Expr, e.Err)
}

// Unwrap returns the underlying error.
func (e *RuleError) Unwrap() error { return e.Err }

// Rule returns the rule's name, for the Crmshare-Rule dead-letter header.
func (e *RuleError) Rule() string { return e.RuleName }

// Retryable is always false: evaluating the same event again gives the same error.
func (e *RuleError) Retryable() bool { return false }

// RuleConfigError is one problem in the rules configuration, found by NewRules
// (which joins all of them with errors.Join).
type RuleConfigError struct {
	Index int    // the rule's position in RulesConfig.Rules; -1 for a problem of the whole config
	Rule  string // the rule's name, if it has one
	Field string // the key: "name", "on.type", "when", "recipients[0].permission", ...
	Line  int    // line in the config file; 0 = unknown
	Err   error
}

// Error reads "line 12: rules[0] "share-deal": when: <problem>".
func (e *RuleConfigError) Error() string {
	var b strings.Builder
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Index >= 0 {
		fmt.Fprintf(&b, "rules[%d]", e.Index)
		if e.Rule != "" {
			fmt.Fprintf(&b, " %q", e.Rule)
		}
		b.WriteString(": ")
	}
	fmt.Fprintf(&b, "%s: %v", e.Field, e.Err)
	return b.String()
}

// Unwrap returns the underlying error.
func (e *RuleConfigError) Unwrap() error { return e.Err }
