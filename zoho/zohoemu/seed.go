package zohoemu

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

//go:embed demo-seed.json
var demoSeed []byte

// Seed is the data of one emulated org, in the JSON format of
// deploy/examples/emulator-seed.json. LoadSeed merges a Seed into the emulator:
// items with the ID of an existing item replace it, new ones are added.
type Seed struct {
	Org     *Org     `json:"org,omitempty"`
	Clients []Client `json:"clients,omitempty"`
	Users   []User   `json:"users,omitempty"`
	Groups  []Group  `json:"groups,omitempty"`
	Roles   []Role   `json:"roles,omitempty"`
	Records []Record `json:"records,omitempty"`
}

// Org is the emulated organisation and its API limits.
type Org struct {
	ID string `json:"id"`
	// ConcurrencyLimit caps simultaneous in-flight CRM calls; 0 means unlimited.
	ConcurrencyLimit int `json:"concurrency_limit"`
	// DailyCredits is the 24-hour credit budget (1 per CRM call); 0 means unlimited.
	DailyCredits int `json:"daily_credits"`
	// TimeZone is the UTC offset used in shared_time, e.g. "+05:30"; empty means "+00:00".
	TimeZone string `json:"time_zone,omitempty"`
}

// Client is an OAuth client (a Zoho "self client") with the one refresh token
// issued to it, the CRM user the token acts as and the scopes it was granted.
type Client struct {
	ClientID     string   `json:"client_id"`
	ClientSecret string   `json:"client_secret"`
	RefreshToken string   `json:"refresh_token"`
	UserID       string   `json:"user_id"`
	Scopes       []string `json:"scopes"`
}

// User is a CRM user. Only active ("status":"active") and confirmed users can
// be share recipients.
type User struct {
	ID       string `json:"id"`
	Email    string `json:"email"`
	FullName string `json:"full_name"`
	Status   string `json:"status"` // "active", "disabled" or "deleted"
	Confirm  bool   `json:"confirm"`
	Profile  string `json:"profile,omitempty"` // e.g. "Administrator"; empty means "Standard"
	Role     string `json:"role,omitempty"`    // a role ID from the seed's roles
	ZUID     string `json:"zuid,omitempty"`    // empty: derived from the ID
}

// Group is a user group, a v8 share recipient.
type Group struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Role is a role, a v8 share recipient.
type Role struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Record is a CRM record that can be shared.
type Record struct {
	Module string `json:"module"` // module API name, e.g. "Deals"
	ID     string `json:"id"`
	Name   string `json:"name"`
	Owner  string `json:"owner"` // user ID; the owner always sees the record
	// Parent is the record this one is related to (a Contact's Account). A
	// parent's shares with share_related_records true show on this record as
	// inherited entries whose shared_through is the parent.
	Parent *Ref `json:"parent,omitempty"`
	// Shares are the record's direct shares.
	Shares []Entry `json:"shares,omitempty"`
	// VisibleTo lists users who see the record by other means (role hierarchy,
	// territory, data sharing rules): sharing with them is "already visible".
	VisibleTo []string `json:"visible_to,omitempty"`
}

// Ref names a record.
type Ref struct {
	Module string `json:"module"`
	ID     string `json:"id"`
}

// Entry is one direct share of a record.
type Entry struct {
	Type         string `json:"type"`                  // "users", "groups", "roles", or "public" (v8 public sharing, no ID)
	ID           string `json:"id,omitempty"`          // the recipient's ID
	Permission   string `json:"permission"`            // "read_only", "read_write" or "full_access"
	ShareRelated bool   `json:"share_related_records"` // Zoho's share_related_records
}

// ParseSeed decodes a seed in the JSON format of deploy/examples/emulator-seed.json.
// Unknown keys are an error, so a typo does not silently lose data.
func ParseSeed(r io.Reader) (*Seed, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var s Seed
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("parse seed: %w", err)
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("parse seed: %w", err)
	}
	return &s, nil
}

// ReadSeedFile reads and parses a seed file.
func ReadSeedFile(path string) (*Seed, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read seed: %w", err)
	}
	defer f.Close()
	s, err := ParseSeed(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// DemoSeed returns the built-in demo org (the same data as
// deploy/examples/emulator-seed.json): one client whose dev credentials are
// ClientID "1000.DEVCLIENT", secret "dev-secret", refresh token
// "1000.dev.refresh", a handful of users, a group, a role and a few records.
// The package tests parse the embedded file, so the error is for form's sake.
func DemoSeed() (*Seed, error) {
	s, err := ParseSeed(bytes.NewReader(demoSeed))
	if err != nil {
		return nil, fmt.Errorf("demo seed: %w", err)
	}
	return s, nil
}

// Validate reports every problem in the seed on its own terms: missing IDs,
// duplicates, bad enum values. References between items (owners, parents,
// recipients) are checked when the seed is loaded, because a seed may refer to
// items loaded earlier.
func (s *Seed) Validate() error {
	var errs []error
	if s.Org != nil {
		if s.Org.ConcurrencyLimit < 0 {
			errs = append(errs, errors.New("org: concurrency_limit must not be negative"))
		}
		if s.Org.DailyCredits < 0 {
			errs = append(errs, errors.New("org: daily_credits must not be negative"))
		}
		if s.Org.TimeZone != "" {
			if _, err := parseOffset(s.Org.TimeZone); err != nil {
				errs = append(errs, fmt.Errorf("org: %w", err))
			}
		}
	}
	seen := map[string]bool{}
	dup := func(kind, id string) bool {
		k := kind + "\x00" + id
		if seen[k] {
			errs = append(errs, fmt.Errorf("%s %q: listed twice", kind, id))
			return true
		}
		seen[k] = true
		return false
	}
	for i, c := range s.Clients {
		switch {
		case c.ClientID == "":
			errs = append(errs, fmt.Errorf("clients[%d]: client_id is required", i))
		case c.ClientSecret == "" || c.RefreshToken == "":
			errs = append(errs, fmt.Errorf("clients[%d] %q: client_secret and refresh_token are required", i, c.ClientID))
		case c.UserID == "":
			errs = append(errs, fmt.Errorf("clients[%d] %q: user_id is required", i, c.ClientID))
		default:
			dup("client", c.ClientID)
			dup("refresh token of client", c.RefreshToken)
		}
	}
	for i, u := range s.Users {
		if u.ID == "" {
			errs = append(errs, fmt.Errorf("users[%d]: id is required", i))
			continue
		}
		dup("user", u.ID)
		switch u.Status {
		case "active", "disabled", "deleted":
		default:
			errs = append(errs, fmt.Errorf("user %q: status %q (want active, disabled or deleted)", u.ID, u.Status))
		}
	}
	for i, g := range s.Groups {
		if g.ID == "" {
			errs = append(errs, fmt.Errorf("groups[%d]: id is required", i))
			continue
		}
		dup("group", g.ID)
	}
	for i, r := range s.Roles {
		if r.ID == "" {
			errs = append(errs, fmt.Errorf("roles[%d]: id is required", i))
			continue
		}
		dup("role", r.ID)
	}
	for i, r := range s.Records {
		if r.Module == "" || r.ID == "" {
			errs = append(errs, fmt.Errorf("records[%d]: module and id are required", i))
			continue
		}
		if dup("record", r.Module+"/"+r.ID) {
			continue
		}
		if r.Parent != nil && (r.Parent.Module == "" || r.Parent.ID == "") {
			errs = append(errs, fmt.Errorf("record %s/%s: parent needs module and id", r.Module, r.ID))
		}
		for j, e := range r.Shares {
			if err := e.validate(); err != nil {
				errs = append(errs, fmt.Errorf("record %s/%s: shares[%d]: %w", r.Module, r.ID, j, err))
			}
		}
	}
	return errors.Join(errs...)
}

func (e Entry) validate() error {
	var errs []error
	switch e.Type {
	case "users", "groups", "roles":
		if e.ID == "" {
			errs = append(errs, errors.New("id is required"))
		}
	case "public":
		if e.ID != "" {
			errs = append(errs, errors.New("a public share has no id"))
		}
	default:
		errs = append(errs, fmt.Errorf("type %q (want users, groups, roles or public)", e.Type))
	}
	if !validPermission(e.Permission) {
		errs = append(errs, fmt.Errorf("permission %q (want read_only, read_write or full_access)", e.Permission))
	}
	return errors.Join(errs...)
}

func validPermission(p string) bool {
	return p == "read_only" || p == "read_write" || p == "full_access"
}

// moduleScope is the module's token in scope names: lower case, no underscores
// ("Price_Books" -> "pricebooks").
func moduleScope(module string) string {
	return strings.ToLower(strings.ReplaceAll(module, "_", ""))
}
