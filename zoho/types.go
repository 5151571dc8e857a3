package zoho

import (
	"fmt"
)

// Permission is the access a share grants. The zero value is invalid on purpose.
type Permission int

// The permissions Zoho documents for record sharing.
const (
	PermissionReadOnly Permission = iota + 1
	PermissionReadWrite
	PermissionFullAccess
)

var permissionNames = map[Permission]string{
	PermissionReadOnly:   "read_only",
	PermissionReadWrite:  "read_write",
	PermissionFullAccess: "full_access",
}

// String returns the Zoho wire value, e.g. "read_write".
func (p Permission) String() string {
	if s, ok := permissionNames[p]; ok {
		return s
	}
	return fmt.Sprintf("Permission(%d)", int(p))
}

// ParsePermission parses a Zoho wire value such as "read_only".
func ParsePermission(s string) (Permission, error) {
	for p, name := range permissionNames {
		if name == s {
			return p, nil
		}
	}
	return 0, fmt.Errorf("unknown permission %q (want read_only, read_write or full_access)", s)
}

// MarshalText encodes the permission as its wire value.
func (p Permission) MarshalText() ([]byte, error) {
	if _, ok := permissionNames[p]; !ok {
		return nil, fmt.Errorf("invalid permission %d", int(p))
	}
	return []byte(p.String()), nil
}

// UnmarshalText decodes a wire value.
func (p *Permission) UnmarshalText(b []byte) error {
	v, err := ParsePermission(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// RecipientType says what kind of principal a share is for. Groups and roles exist
// only in the v8 dialect.
type RecipientType int

// The recipient kinds of the v8 shared_with object.
const (
	RecipientUser RecipientType = iota + 1
	RecipientGroup
	RecipientRole
)

var recipientTypeNames = map[RecipientType]string{
	RecipientUser:  "users",
	RecipientGroup: "groups",
	RecipientRole:  "roles",
}

// String returns the v8 wire value: "users", "groups" or "roles".
func (t RecipientType) String() string {
	if s, ok := recipientTypeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("RecipientType(%d)", int(t))
}

// ParseRecipientType parses a v8 wire value ("users", "groups", "roles").
func ParseRecipientType(s string) (RecipientType, error) {
	for t, name := range recipientTypeNames {
		if name == s {
			return t, nil
		}
	}
	return 0, fmt.Errorf("unknown recipient type %q (want users, groups or roles)", s)
}

// MarshalText encodes the type as its wire value.
func (t RecipientType) MarshalText() ([]byte, error) {
	if _, ok := recipientTypeNames[t]; !ok {
		return nil, fmt.Errorf("invalid recipient type %d", int(t))
	}
	return []byte(t.String()), nil
}

// UnmarshalText decodes a wire value.
func (t *RecipientType) UnmarshalText(b []byte) error {
	v, err := ParseRecipientType(string(b))
	if err != nil {
		return err
	}
	*t = v
	return nil
}

// Recipient is the principal a share is for.
type Recipient struct {
	Type RecipientType
	ID   string // Zoho IDs are strings of up to 19 digits; never numbers
}

// String renders the recipient as "users:123" for logs and error messages.
func (r Recipient) String() string { return r.Type.String() + ":" + r.ID }

// Share is one entry of a share (POST) or replace (PUT) request: a recipient and the
// access it should have. Only private shares are modelled; public sharing is not
// something this service does.
type Share struct {
	Recipient    Recipient
	Permission   Permission
	ShareRelated bool // Zoho's share_related_records
}

// Result is Zoho's answer for one entry of a share or replace request, in the
// order of the request's entries.
type Result struct {
	Code    string // "SUCCESS" or Zoho's error code
	Message string
	Err     error // nil when the entry succeeded, else a *Error for this entry
}

// SharedEntry is one entry of a record's share list as returned by GET.
type SharedEntry struct {
	Recipient    Recipient
	Name         string // the recipient's display name, when Zoho gives one
	Permission   Permission
	ShareRelated bool
	// SharedThroughModule and SharedThroughID name the record whose sharing grants
	// this access: the record itself for a direct share, a parent record for access
	// inherited through share_related_records.
	SharedThroughModule string
	SharedThroughID     string
	SharedBy            string // user ID of whoever shared it
	SharedTime          string // ISO-8601 with the org's offset, as Zoho sent it
}

// Direct reports whether the entry was shared through recordID itself (and so may
// be rewritten by a PUT on recordID). Entries without shared_through are treated
// as direct.
func (e SharedEntry) Direct(recordID string) bool {
	return e.SharedThroughID == "" || e.SharedThroughID == recordID
}

// Share returns the entry as a Share request entry carrying only the documented keys.
func (e SharedEntry) Share() Share {
	return Share{Recipient: e.Recipient, Permission: e.Permission, ShareRelated: e.ShareRelated}
}

// User is a CRM user as the Users API returns it.
type User struct {
	ID       string
	Email    string
	FullName string
	Status   string // "active" or "disabled"
	Confirm  bool
}

// Active reports whether the user can be a share recipient: active and confirmed.
func (u User) Active() bool { return u.Status == "active" && u.Confirm }
