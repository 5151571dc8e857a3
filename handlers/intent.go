package handlers

import (
	"fmt"

	"github.com/crmshare/crmshare/zoho"
)

// Action is what an intent does to a record's sharing. The zero value is invalid.
type Action int

// The actions a rule can ask for.
const (
	// ActionGrant makes sure the recipients have the given access.
	ActionGrant Action = iota + 1
	// ActionRevoke takes access from the recipients.
	ActionRevoke
	// ActionSet makes the record's direct shares exactly the recipients.
	ActionSet
	// ActionRevokeAll removes every direct share of the record.
	ActionRevokeAll
)

var actionNames = map[Action]string{
	ActionGrant:     "grant",
	ActionRevoke:    "revoke",
	ActionSet:       "set",
	ActionRevokeAll: "revoke_all",
}

// String returns the config value, e.g. "revoke_all".
func (a Action) String() string {
	if s, ok := actionNames[a]; ok {
		return s
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// ParseAction parses a config value.
func ParseAction(s string) (Action, error) {
	for a, name := range actionNames {
		if name == s {
			return a, nil
		}
	}
	return 0, fmt.Errorf("unknown action %q (want grant, revoke, set or revoke_all)", s)
}

// MarshalText encodes the action as its config value.
func (a Action) MarshalText() ([]byte, error) {
	if _, ok := actionNames[a]; !ok {
		return nil, fmt.Errorf("invalid action %d", int(a))
	}
	return []byte(a.String()), nil
}

// UnmarshalText decodes a config value.
func (a *Action) UnmarshalText(b []byte) error {
	v, err := ParseAction(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// Intent asks for recipients' access to one CRM record to be granted, changed or removed.
type Intent struct {
	Rule       string // the rule that produced it, for logs and spans
	Module     string // Zoho module API name, e.g. "Deals"
	RecordID   string // Zoho record ID
	Action     Action
	Recipients []Grant // empty for ActionRevokeAll; may be empty for ActionSet (= remove all)
}

// Key is the ordering key of the record the intent touches: "Module/RecordID".
func (in Intent) Key() string { return in.Module + "/" + in.RecordID }

// Grant is one recipient's requested access.
type Grant struct {
	// Recipient names a user, group or role by ID. When Email is set instead,
	// Recipient.Type is zoho.RecipientUser and Recipient.ID is empty until the
	// share handler resolves the email to an active, confirmed user.
	Recipient    zoho.Recipient
	Email        string
	Permission   zoho.Permission // ignored for ActionRevoke
	ShareRelated bool            // Zoho's share_related_records
}

// Outcome is how an intent ended when it succeeded. The zero value is invalid.
type Outcome int

// The outcomes of a successful intent.
const (
	// OutcomeApplied: Zoho's sharing was changed.
	OutcomeApplied Outcome = iota + 1
	// OutcomeUnchanged: Zoho already had the requested state; nothing was written.
	OutcomeUnchanged
	// OutcomeAlreadyAccessible: a recipient already sees the record through something
	// other than a direct share (owner, role, a parent's related-records share).
	OutcomeAlreadyAccessible
)

var outcomeNames = map[Outcome]string{
	OutcomeApplied:           "applied",
	OutcomeUnchanged:         "unchanged",
	OutcomeAlreadyAccessible: "already_accessible",
}

// String returns "applied", "unchanged" or "already_accessible".
func (o Outcome) String() string {
	if s, ok := outcomeNames[o]; ok {
		return s
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// MarshalText encodes the outcome as its name.
func (o Outcome) MarshalText() ([]byte, error) { return []byte(o.String()), nil }
