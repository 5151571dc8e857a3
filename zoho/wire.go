package zoho

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// envelope is every reply shape the share and users endpoints document, decoded
// in one pass: a per-entry "share" array (POST/PUT results, GET entries), DELETE's
// object-shaped "share", a bare error object, and the users list. Unknown keys
// are ignored.
type envelope struct {
	Share   shareList      `json:"share"`
	Users   []wireUser     `json:"users"`
	Info    *pageInfo      `json:"info"`
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Status  string         `json:"status"`
	Details map[string]any `json:"details"`

	nonJSON bool // the body was not JSON (e.g. a proxy's HTML error page)
}

// decode fills e from a reply body. An empty body (204) decodes to nothing. A body
// that is not JSON is an error for a 2xx reply (the outcome is unknown) and is
// noted but tolerated for an error status, whose status alone then tells the story.
func (e *envelope) decode(status int, contentType string, body []byte) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	if err := json.Unmarshal(body, e); err != nil {
		*e = envelope{nonJSON: true}
		if status >= 300 {
			return nil
		}
		ct := contentType
		if ct == "" {
			ct = "no content type"
		}
		return fmt.Errorf("undecodable %d reply (%s): %w", status, ct, err)
	}
	return nil
}

// errorCode is the Zoho error code the reply carries: the bare object's code, or
// the first failed entry's code. Empty when everything succeeded.
func (e *envelope) errorCode() string {
	if e.Code != "" && !strings.EqualFold(e.Status, "success") && e.Code != "SUCCESS" {
		return e.Code
	}
	for _, en := range e.Share.entries {
		if !en.success() && en.Code != "" {
			return en.Code
		}
	}
	return ""
}

// shareList is the "share" key, which is an array everywhere except in DELETE's
// reply, where it is a single object.
type shareList struct {
	entries []wireEntry
	object  bool
}

// UnmarshalJSON accepts an array, an object or null.
func (s *shareList) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0 || bytes.Equal(b, []byte("null")):
		return nil
	case b[0] == '[':
		return json.Unmarshal(b, &s.entries)
	case b[0] == '{':
		s.entries = make([]wireEntry, 1)
		s.object = true
		return json.Unmarshal(b, &s.entries[0])
	}
	return fmt.Errorf("share: want an array or an object, got %.20s", b)
}

// wireEntry is the union of a per-entry result and a GET share entry.
type wireEntry struct {
	// Result keys.
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Status  string         `json:"status"`
	Details map[string]any `json:"details"`

	// GET entry keys: v8 names the recipient shared_with, v2 (and v7 for access
	// that exists through other mechanisms) names it user.
	SharedWith    *wirePrincipal `json:"shared_with"`
	User          *wirePrincipal `json:"user"`
	Permission    string         `json:"permission"`
	ShareRelated  flexBool       `json:"share_related_records"`
	SharedThrough *wireThrough   `json:"shared_through"`
	SharedBy      *wirePrincipal `json:"shared_by"`
	SharedTime    string         `json:"shared_time"`
}

func (en wireEntry) success() bool {
	return strings.EqualFold(en.Status, "success") || (en.Status == "" && en.Code == "SUCCESS")
}

// sharedEntry converts a GET entry.
func (en wireEntry) sharedEntry() (SharedEntry, error) {
	p := en.SharedWith
	if p == nil {
		p = en.User
	}
	if p == nil || p.ID == "" {
		return SharedEntry{}, fmt.Errorf("share entry names no recipient")
	}
	rt := RecipientUser
	if p.Type != "" {
		t, err := ParseRecipientType(p.Type)
		if err != nil {
			return SharedEntry{}, fmt.Errorf("share entry for %s: %w", p.ID, err)
		}
		rt = t
	}
	perm, err := ParsePermission(en.Permission)
	if err != nil {
		return SharedEntry{}, fmt.Errorf("share entry for %s: %w", p.ID, err)
	}
	out := SharedEntry{
		Recipient:    Recipient{Type: rt, ID: string(p.ID)},
		Name:         p.name(),
		Permission:   perm,
		ShareRelated: bool(en.ShareRelated),
		SharedTime:   en.SharedTime,
	}
	if t := en.SharedThrough; t != nil {
		out.SharedThroughID = string(t.ID)
		if t.Module != nil {
			out.SharedThroughModule = t.Module.Name
		}
	}
	if en.SharedBy != nil {
		out.SharedBy = string(en.SharedBy.ID)
	}
	return out, nil
}

// wirePrincipal is a user, group or role as Zoho embeds it.
type wirePrincipal struct {
	ID       flexString `json:"id"`
	Type     string     `json:"type"`
	Name     string     `json:"name"`
	FullName string     `json:"full_name"`
}

func (p wirePrincipal) name() string {
	if p.Name != "" {
		return p.Name
	}
	return p.FullName
}

type wireThrough struct {
	ID     flexString     `json:"id"`
	Module *wirePrincipal `json:"module"`
}

// wireUser is one element of the users list.
type wireUser struct {
	ID       flexString `json:"id"`
	Email    string     `json:"email"`
	FullName string     `json:"full_name"`
	Status   string     `json:"status"`
	Confirm  flexBool   `json:"confirm"`
}

func (u wireUser) user() User {
	return User{ID: string(u.ID), Email: u.Email, FullName: u.FullName, Status: u.Status, Confirm: bool(u.Confirm)}
}

type pageInfo struct {
	Page        int      `json:"page"`
	PerPage     int      `json:"per_page"`
	Count       int      `json:"count"`
	MoreRecords flexBool `json:"more_records"`
}

// flexString decodes a JSON string, or a number without losing digits (Zoho IDs
// are strings of up to 19 digits, beyond float64's precision).
type flexString string

// UnmarshalJSON accepts a string, a number or null.
func (s *flexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*s = ""
		return nil
	case len(b) > 0 && b[0] == '"':
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*s = flexString(v)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("id: want a string or a number: %w", err)
	}
	*s = flexString(n.String())
	return nil
}

// flexBool decodes a JSON boolean, or the strings "true" and "false".
type flexBool bool

// UnmarshalJSON accepts true, false, "true", "false" or null.
func (v *flexBool) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(bytes.TrimSpace(b)), `"`)
	if s == "null" || s == "" {
		*v = false
		return nil
	}
	p, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("want a boolean, got %.20s", b)
	}
	*v = flexBool(p)
	return nil
}
