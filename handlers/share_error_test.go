package handlers

import (
	"errors"
	"fmt"
	"testing"
)

// TestErrorMessage: each part appears once, with no empty separators, and
// a mapping error does not repeat the rule its cause already names.
func TestErrorMessage(t *testing.T) {
	cause := errors.New("cause")
	ruleErr := &RuleError{RuleName: "share-deal", Field: "when", Expr: "data.amount > 0", Err: errors.New("no such key: amount")}
	tests := []struct {
		err  *Error
		want string
	}{
		{&Error{rule: "share-deal", action: ActionGrant, module: "Deals", recordID: "123", recipient: "users:456", err: cause},
			"rule share-deal: grant Deals/123 (users:456): cause"},
		{&Error{action: ActionRevoke, module: "Deals", recordID: "123", err: cause}, "revoke Deals/123: cause"},
		{&Error{rule: "share-deal", err: cause}, "rule share-deal: cause"},
		{&Error{rule: "share-deal", err: fmt.Errorf("%w: %w", ErrMapper, ruleErr)},
			`map event to share intents: rule "share-deal": when (data.amount > 0): no such key: amount`},
		{&Error{rule: "share-deal", module: "Deals", recordID: "123"}, "rule share-deal: Deals/123"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q\nwant       %q", got, tt.want)
		}
	}
}
