package handlers

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/crmshare/crmshare/zoho"
)

// intentJSON is the readable JSON form of an Intent, as `crmshare rules test`
// prints it:
//
//	{"rule":"share-deal","action":"grant","module":"Deals","record_id":"4150868000002515001",
//	 "recipients":[{"user":"4150868000001248015","permission":"read_write","share_related_records":true}]}
type intentJSON struct {
	Rule       string      `json:"rule"`
	Action     string      `json:"action"`
	Module     string      `json:"module"`
	RecordID   string      `json:"record_id"`
	Recipients []grantJSON `json:"recipients,omitempty"`
}

// grantJSON names the recipient by exactly one of user, group or role, or by
// email (with user too once the email is resolved).
type grantJSON struct {
	User         string `json:"user,omitempty"`
	Email        string `json:"email,omitempty"`
	Group        string `json:"group,omitempty"`
	Role         string `json:"role,omitempty"`
	Permission   string `json:"permission,omitempty"`
	ShareRelated bool   `json:"share_related_records"`
}

// MarshalJSON encodes the intent in its readable form. Recipients is left out
// for revoke_all and written as [] for a set to nobody.
func (in Intent) MarshalJSON() ([]byte, error) {
	if _, err := in.Action.MarshalText(); err != nil {
		return nil, fmt.Errorf("intent of rule %q: %w", in.Rule, err)
	}
	head := intentJSON{Rule: in.Rule, Action: in.Action.String(), Module: in.Module, RecordID: in.RecordID}
	if in.Action == ActionRevokeAll && len(in.Recipients) == 0 {
		return json.Marshal(head)
	}
	gs := make([]grantJSON, 0, len(in.Recipients))
	for _, g := range in.Recipients {
		gj, err := g.toJSON()
		if err != nil {
			return nil, fmt.Errorf("intent of rule %q: %w", in.Rule, err)
		}
		gs = append(gs, gj)
	}
	// Written even when empty: for set, "recipients": [] means "remove every direct share".
	return json.Marshal(struct {
		intentJSON
		Recipients []grantJSON `json:"recipients"`
	}{head, gs})
}

// UnmarshalJSON decodes the readable form written by MarshalJSON.
func (in *Intent) UnmarshalJSON(b []byte) error {
	var v intentJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	a, err := ParseAction(v.Action)
	if err != nil {
		return err
	}
	out := Intent{Rule: v.Rule, Module: v.Module, RecordID: v.RecordID, Action: a}
	for i, gj := range v.Recipients {
		g, err := gj.toGrant()
		if err != nil {
			return fmt.Errorf("recipients[%d]: %w", i, err)
		}
		out.Recipients = append(out.Recipients, g)
	}
	*in = out
	return nil
}

// MarshalJSON encodes the grant as {"user"|"email"|"group"|"role": ..., "permission": ..., "share_related_records": ...}.
func (g Grant) MarshalJSON() ([]byte, error) {
	gj, err := g.toJSON()
	if err != nil {
		return nil, err
	}
	return json.Marshal(gj)
}

// UnmarshalJSON decodes the form written by MarshalJSON.
func (g *Grant) UnmarshalJSON(b []byte) error {
	var gj grantJSON
	if err := json.Unmarshal(b, &gj); err != nil {
		return err
	}
	v, err := gj.toGrant()
	if err != nil {
		return err
	}
	*g = v
	return nil
}

func (g Grant) toJSON() (grantJSON, error) {
	gj := grantJSON{Email: g.Email, ShareRelated: g.ShareRelated}
	if g.Permission != 0 {
		gj.Permission = g.Permission.String()
		if _, err := g.Permission.MarshalText(); err != nil {
			return grantJSON{}, err
		}
	}
	switch g.Recipient.Type {
	case zoho.RecipientUser:
		gj.User = g.Recipient.ID
	case zoho.RecipientGroup:
		gj.Group = g.Recipient.ID
	case zoho.RecipientRole:
		gj.Role = g.Recipient.ID
	case 0:
		if g.Email == "" {
			return grantJSON{}, errors.New("grant has no recipient")
		}
	default:
		return grantJSON{}, fmt.Errorf("invalid recipient type %d", int(g.Recipient.Type))
	}
	if gj.User == "" && gj.Group == "" && gj.Role == "" && gj.Email == "" {
		return grantJSON{}, errors.New("grant has no recipient")
	}
	return gj, nil
}

func (gj grantJSON) toGrant() (Grant, error) {
	g := Grant{Email: gj.Email, ShareRelated: gj.ShareRelated}
	if gj.Permission != "" {
		p, err := zoho.ParsePermission(gj.Permission)
		if err != nil {
			return Grant{}, err
		}
		g.Permission = p
	}
	n := 0
	for _, c := range []struct {
		t  zoho.RecipientType
		id string
	}{{zoho.RecipientUser, gj.User}, {zoho.RecipientGroup, gj.Group}, {zoho.RecipientRole, gj.Role}} {
		if c.id != "" {
			g.Recipient = zoho.Recipient{Type: c.t, ID: c.id}
			n++
		}
	}
	switch {
	case n > 1:
		return Grant{}, errors.New("set only one of user, group and role")
	case n == 0 && gj.Email == "":
		return Grant{}, errors.New("no recipient: set user, email, group or role")
	case gj.Email != "" && g.Recipient.Type != 0 && g.Recipient.Type != zoho.RecipientUser:
		return Grant{}, errors.New("an email names a user, not a group or role")
	case gj.Email != "":
		g.Recipient.Type = zoho.RecipientUser
	}
	return g, nil
}
