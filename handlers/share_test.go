package handlers

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/crmshare/crmshare/zoho"
	"github.com/crmshare/crmshare/zoho/zohoemu"
)

const (
	ro = zoho.PermissionReadOnly
	rw = zoho.PermissionReadWrite
	fa = zoho.PermissionFullAccess
)

type recordKey struct{ module, id string }

// TestApplyIntentsConverges runs every convergence branch against the emulator
// in every dialect, three times each: the first run must make the listed calls
// and reach the listed state; the second and third must not change Zoho.
func TestApplyIntentsConverges(t *testing.T) {
	deal := func(n int) recordKey { return recordKey{"Deals", rid(n)} }
	tests := []struct {
		name      string
		onlyV8    bool
		before    map[recordKey][]zohoemu.Entry
		intents   []Intent
		outcomes  []Outcome
		calls     Calls // share calls and directory lookups of the first run
		after     map[recordKey][]zohoemu.Entry
		unchanged []recordKey // records whose shares must be exactly as before
	}{
		{
			name:     "first-time grant is one POST",
			intents:  []Intent{intent(ActionGrant, "Deals", rid(1), user(1, rw, true), user(2, ro, false))},
			outcomes: []Outcome{OutcomeApplied},
			calls:    Calls{Post: 1, Users: 2},
			after:    map[recordKey][]zohoemu.Entry{deal(1): {entry(1, "read_write", true), entry(2, "read_only", false)}},
		},
		{
			name: "grant by email",
			intents: []Intent{intent(ActionGrant, "Deals", rid(1),
				Grant{Email: email(3), Permission: fa})},
			outcomes: []Outcome{OutcomeApplied},
			calls:    Calls{Post: 1, Users: 1},
			after:    map[recordKey][]zohoemu.Entry{deal(1): {entry(3, "full_access", false)}},
		},
		{
			name:     "grant with other access is one PUT keeping the other recipients intact",
			before:   map[recordKey][]zohoemu.Entry{deal(1): {entry(1, "read_only", false), entry(2, "full_access", true), entry(3, "read_write", false)}},
			intents:  []Intent{intent(ActionGrant, "Deals", rid(1), user(1, rw, true))},
			outcomes: []Outcome{OutcomeApplied},
			calls:    Calls{Post: 1, Get: 1, Put: 1, Users: 1},
			after:    map[recordKey][]zohoemu.Entry{deal(1): {entry(1, "read_write", true), entry(2, "full_access", true), entry(3, "read_write", false)}},
		},
		{
			name:     "grant already in place",
			before:   map[recordKey][]zohoemu.Entry{deal(1): {entry(1, "read_write", false)}},
			intents:  []Intent{intent(ActionGrant, "Deals", rid(1), user(1, rw, false))},
			outcomes: []Outcome{OutcomeUnchanged},
			calls:    Calls{Post: 1, Get: 1, Users: 1},
			after:    map[recordKey][]zohoemu.Entry{deal(1): {entry(1, "read_write", false)}},
		},
		{
			name:     "grant to a user who sees the record through the role hierarchy",
			intents:  []Intent{intent(ActionGrant, "Deals", visibleDealID, user(1, rw, false))},
			outcomes: []Outcome{OutcomeAlreadyAccessible},
			calls:    Calls{Post: 1, Get: 1, Users: 1},
			after:    map[recordKey][]zohoemu.Entry{{"Deals", visibleDealID}: nil},
		},
		{
			name:      "grant to a user who sees the record through the parent's related share",
			before:    map[recordKey][]zohoemu.Entry{{"Accounts", accountID}: {entry(2, "read_only", true)}},
			intents:   []Intent{intent(ActionGrant, "Contacts", contactID, user(2, ro, false))},
			outcomes:  []Outcome{OutcomeAlreadyAccessible},
			calls:     Calls{Post: 1, Get: 1, Users: 1},
			after:     map[recordKey][]zohoemu.Entry{{"Contacts", contactID}: nil},
			unchanged: []recordKey{{"Accounts", accountID}},
		},
		{
			name:     "revoke keeps the others' permissions and related flags",
			before:   map[recordKey][]zohoemu.Entry{deal(1): {entry(1, "read_only", false), entry(2, "full_access", true), entry(3, "read_write", false)}},
			intents:  []Intent{intent(ActionRevoke, "Deals", rid(1), user(1, 0, false))},
			outcomes: []Outcome{OutcomeApplied},
			calls:    Calls{Get: 1, Put: 1},
			after:    map[recordKey][]zohoemu.Entry{deal(1): {entry(2, "full_access", true), entry(3, "read_write", false)}},
		},
		{
			name:     "revoke of someone without a share",
			before:   map[recordKey][]zohoemu.Entry{deal(1): {entry(2, "read_only", false)}},
			intents:  []Intent{intent(ActionRevoke, "Deals", rid(1), user(1, 0, false))},
			outcomes: []Outcome{OutcomeUnchanged},
			calls:    Calls{Get: 1},
			after:    map[recordKey][]zohoemu.Entry{deal(1): {entry(2, "read_only", false)}},
		},
		{
			name:     "revoke of the last user is a DELETE",
			before:   map[recordKey][]zohoemu.Entry{deal(1): {entry(1, "read_only", false)}},
			intents:  []Intent{intent(ActionRevoke, "Deals", rid(1), user(1, 0, false))},
			outcomes: []Outcome{OutcomeApplied},
			calls:    Calls{Get: 1, Delete: 1},
			after:    map[recordKey][]zohoemu.Entry{deal(1): nil},
		},
		{
			name:     "revoke by an email that matches no active user",
			before:   map[recordKey][]zohoemu.Entry{deal(1): {entry(1, "read_only", false)}},
			intents:  []Intent{intent(ActionRevoke, "Deals", rid(1), Grant{Email: "nobody@acme.example"})},
			outcomes: []Outcome{OutcomeUnchanged},
			calls:    Calls{Get: 1, Users: 1},
			after:    map[recordKey][]zohoemu.Entry{deal(1): {entry(1, "read_only", false)}},
		},
		{
			name:     "set puts back a share changed by hand",
			before:   map[recordKey][]zohoemu.Entry{deal(1): {entry(1, "full_access", false), entry(4, "read_only", false)}},
			intents:  []Intent{intent(ActionSet, "Deals", rid(1), user(1, ro, false), user(2, rw, true))},
			outcomes: []Outcome{OutcomeApplied},
			calls:    Calls{Get: 1, Put: 1, Users: 2},
			after:    map[recordKey][]zohoemu.Entry{deal(1): {entry(1, "read_only", false), entry(2, "read_write", true)}},
		},
		{
			name:     "set already in place",
			before:   map[recordKey][]zohoemu.Entry{deal(1): {entry(1, "read_only", false), entry(2, "read_write", true)}},
			intents:  []Intent{intent(ActionSet, "Deals", rid(1), user(2, rw, true), user(1, ro, false))},
			outcomes: []Outcome{OutcomeUnchanged},
			calls:    Calls{Get: 1, Users: 2},
			after:    map[recordKey][]zohoemu.Entry{deal(1): {entry(1, "read_only", false), entry(2, "read_write", true)}},
		},
		{
			name:     "set to nobody is a DELETE",
			before:   map[recordKey][]zohoemu.Entry{deal(1): {entry(1, "read_only", false)}},
			intents:  []Intent{intent(ActionSet, "Deals", rid(1))},
			outcomes: []Outcome{OutcomeApplied},
			calls:    Calls{Get: 1, Delete: 1},
			after:    map[recordKey][]zohoemu.Entry{deal(1): nil},
		},
		{
			name: "set rewrites only the direct shares and leaves inherited access alone",
			before: map[recordKey][]zohoemu.Entry{
				{"Accounts", accountID}: {entry(2, "read_only", true)},
				{"Contacts", contactID}: {entry(3, "read_write", false)},
			},
			intents:   []Intent{intent(ActionSet, "Contacts", contactID, user(4, ro, false))},
			outcomes:  []Outcome{OutcomeApplied},
			calls:     Calls{Get: 1, Put: 1, Users: 1},
			after:     map[recordKey][]zohoemu.Entry{{"Contacts", contactID}: {entry(4, "read_only", false)}},
			unchanged: []recordKey{{"Accounts", accountID}},
		},
		{
			name:     "revoke_all is one DELETE",
			before:   map[recordKey][]zohoemu.Entry{deal(1): {entry(1, "read_only", false), entry(2, "full_access", true)}},
			intents:  []Intent{intent(ActionRevokeAll, "Deals", rid(1))},
			outcomes: []Outcome{OutcomeApplied},
			calls:    Calls{Delete: 1},
			after:    map[recordKey][]zohoemu.Entry{deal(1): nil},
		},
		{
			name:     "revoke_all with nothing to revoke",
			intents:  []Intent{intent(ActionRevokeAll, "Deals", rid(1))},
			outcomes: []Outcome{OutcomeUnchanged},
			calls:    Calls{Delete: 1},
			after:    map[recordKey][]zohoemu.Entry{deal(1): nil},
		},
		{
			name:   "revoke then grant on one record is one GET and one PUT",
			before: map[recordKey][]zohoemu.Entry{deal(1): {entry(1, "read_only", false), entry(2, "full_access", true)}},
			intents: []Intent{
				intent(ActionRevoke, "Deals", rid(1), user(1, 0, false)),
				intent(ActionGrant, "Deals", rid(1), user(3, rw, false)),
			},
			outcomes: []Outcome{OutcomeApplied, OutcomeApplied},
			calls:    Calls{Get: 1, Put: 1, Users: 1},
			after:    map[recordKey][]zohoemu.Entry{deal(1): {entry(2, "full_access", true), entry(3, "read_write", false)}},
		},
		{
			name: "grants on two records and two grants on one",
			intents: []Intent{
				intent(ActionGrant, "Deals", rid(1), user(1, rw, false)),
				intent(ActionGrant, "Deals", rid(2), user(1, ro, false)),
				intent(ActionGrant, "Deals", rid(1), user(2, ro, false), user(1, fa, false)),
			},
			outcomes: []Outcome{OutcomeApplied, OutcomeApplied, OutcomeApplied},
			calls:    Calls{Post: 2, Users: 4},
			after: map[recordKey][]zohoemu.Entry{
				deal(1): {entry(1, "full_access", false), entry(2, "read_only", false)},
				deal(2): {entry(1, "read_only", false)},
			},
		},
		{
			name:   "grant then revoke_all is one DELETE",
			before: map[recordKey][]zohoemu.Entry{deal(1): {entry(5, "read_only", false)}},
			intents: []Intent{
				intent(ActionGrant, "Deals", rid(1), user(1, rw, false)),
				intent(ActionRevokeAll, "Deals", rid(1)),
			},
			outcomes: []Outcome{OutcomeApplied, OutcomeApplied},
			calls:    Calls{Delete: 1, Users: 1},
			after:    map[recordKey][]zohoemu.Entry{deal(1): nil},
		},
		{
			name: "a recipient named twice gets the most access",
			intents: []Intent{intent(ActionGrant, "Deals", rid(1),
				user(1, ro, false), user(1, fa, false), Grant{Email: email(1), Permission: ro, ShareRelated: true})},
			outcomes: []Outcome{OutcomeApplied},
			calls:    Calls{Post: 1, Users: 3},
			after:    map[recordKey][]zohoemu.Entry{deal(1): {entry(1, "full_access", true)}},
		},
		{
			name:   "groups and roles",
			onlyV8: true,
			intents: []Intent{intent(ActionGrant, "Deals", rid(1),
				Grant{Recipient: zoho.Recipient{Type: zoho.RecipientGroup, ID: testGroup}, Permission: rw},
				Grant{Recipient: zoho.Recipient{Type: zoho.RecipientRole, ID: testRole}, Permission: ro, ShareRelated: true})},
			outcomes: []Outcome{OutcomeApplied},
			calls:    Calls{Post: 1},
			after: map[recordKey][]zohoemu.Entry{deal(1): {
				{Type: "groups", ID: testGroup, Permission: "read_write"},
				{Type: "roles", ID: testRole, Permission: "read_only", ShareRelated: true},
			}},
		},
	}
	for _, version := range versions {
		t.Run(version, func(t *testing.T) {
			for _, tt := range tests {
				if tt.onlyV8 && version != "v8" {
					continue
				}
				t.Run(tt.name, func(t *testing.T) {
					env := newTestEnv(t, version, testSeed(12, 3))
					for k, es := range tt.before {
						env.setShares(t, k.module, k.id, es...)
					}
					kept := make(map[recordKey][]zohoemu.Entry)
					for _, k := range tt.unchanged {
						kept[k] = env.emu.Shares(k.module, k.id)
					}
					env.warmUsers(t)

					var appliedAfterFirst int
					for run := 1; run <= 3; run++ {
						rep, err := env.h.ApplyIntents(t.Context(), tt.intents)
						if err != nil {
							t.Fatalf("run %d: ApplyIntents: %v", run, err)
						}
						st := env.emu.Requests()
						if run == 1 {
							appliedAfterFirst = st.AppliedWrites
							var outcomes []Outcome
							for _, ir := range rep.Intents {
								outcomes = append(outcomes, ir.Outcome)
							}
							if diff := cmp.Diff(tt.outcomes, outcomes); diff != "" {
								t.Errorf("outcomes (-want +got):\n%s", diff)
							}
							if diff := cmp.Diff(tt.calls, rep.Calls); diff != "" {
								t.Errorf("reported calls (-want +got):\n%s", diff)
							}
							want := tt.calls
							want.Users = 0
							if diff := cmp.Diff(want, shareCalls(st)); diff != "" {
								t.Errorf("share calls the emulator saw (-want +got):\n%s", diff)
							}
						}
						if got := st.AppliedWrites; got != appliedAfterFirst {
							t.Errorf("run %d: emulator applied writes = %d, want %d (only the first run may change Zoho)", run, got, appliedAfterFirst)
						}
						for k, want := range tt.after {
							if diff := cmp.Diff(sortEntries(want), sortEntries(env.emu.Shares(k.module, k.id))); diff != "" {
								t.Errorf("run %d: shares of %s/%s (-want +got):\n%s", run, k.module, k.id, diff)
							}
						}
						for k, want := range kept {
							if diff := cmp.Diff(want, env.emu.Shares(k.module, k.id)); diff != "" {
								t.Errorf("run %d: shares of %s/%s changed (-before +after):\n%s", run, k.module, k.id, diff)
							}
						}
					}
				})
			}
		})
	}
}

// TestApplyIntentsRefuses covers the permanent failures: each names the rule,
// the record and, when it is about one, the recipient, and none exceeds
// Zoho's limits.
func TestApplyIntentsRefuses(t *testing.T) {
	nine := make([]zohoemu.Entry, 9)
	for i := range nine {
		nine[i] = entry(i+1, "read_only", false)
	}
	var eleven []Grant
	for n := 1; n <= 11; n++ {
		eleven = append(eleven, user(n, ro, false))
	}
	var sixGroups []Grant
	for n := range 6 {
		sixGroups = append(sixGroups, Grant{Recipient: zoho.Recipient{Type: zoho.RecipientGroup, ID: rid(900 + n)}, Permission: ro})
	}
	tests := []struct {
		name       string
		versions   []string // nil: all
		before     []zohoemu.Entry
		in         Intent
		is         error  // errors.Is target
		recipient  string // want Recipient()
		shareCalls int    // share-endpoint calls made
	}{
		{name: "unknown email", in: intent(ActionGrant, "Deals", rid(1), Grant{Email: "nobody@acme.example", Permission: ro}),
			is: zoho.ErrUserNotFound, recipient: "nobody@acme.example"},
		{name: "disabled user", in: intent(ActionGrant, "Deals", rid(1), Grant{Recipient: zoho.Recipient{Type: zoho.RecipientUser, ID: disabledUser}, Permission: ro}),
			is: zoho.ErrUserNotFound, recipient: "users:" + disabledUser},
		{name: "unconfirmed user", in: intent(ActionSet, "Deals", rid(1), Grant{Recipient: zoho.Recipient{Type: zoho.RecipientUser, ID: unconfirmedUser}, Permission: ro}),
			is: zoho.ErrUserNotFound, recipient: "users:" + unconfirmedUser},
		{name: "eleven users in one set", in: intent(ActionSet, "Deals", rid(1), eleven...), is: zoho.ErrShareLimitExceeded},
		{name: "six groups", versions: []string{"v8"}, in: intent(ActionGrant, "Deals", rid(1), sixGroups...), is: zoho.ErrShareLimitExceeded},
		{name: "groups before v8", versions: []string{"v2", "v2.1"}, in: intent(ActionGrant, "Deals", rid(1), sixGroups[0]), is: ErrInvalidIntent},
		{name: "activity module", in: intent(ActionGrant, "Tasks", rid(1), user(1, ro, false)), is: ErrInvalidIntent},
		{name: "record ID that is not a Zoho ID", in: intent(ActionRevokeAll, "Deals", "../users"), is: ErrInvalidIntent},
		{name: "recipient with email and ID", in: intent(ActionGrant, "Deals", rid(1), Grant{Email: email(1), Recipient: zoho.Recipient{Type: zoho.RecipientUser, ID: uid(1)}, Permission: ro}), is: ErrInvalidIntent},
		{name: "grant without permission", in: intent(ActionGrant, "Deals", rid(1), user(1, 0, false)), is: ErrInvalidIntent},
		{name: "record Zoho does not know", in: intent(ActionRevokeAll, "Deals", rid(999)), shareCalls: 1},
		{name: "grant past the user limit", before: nine,
			in: intent(ActionGrant, "Deals", rid(1), user(10, ro, false), user(11, ro, false), user(12, ro, false)),
			is: zoho.ErrShareLimitExceeded, shareCalls: 2},
	}
	for _, version := range versions {
		t.Run(version, func(t *testing.T) {
			for _, tt := range tests {
				if tt.versions != nil && !contains(tt.versions, version) {
					continue
				}
				t.Run(tt.name, func(t *testing.T) {
					env := newTestEnv(t, version, testSeed(12, 1))
					if tt.before != nil {
						env.setShares(t, "Deals", rid(1), tt.before...)
					}
					env.warmUsers(t)
					rep, err := env.h.ApplyIntents(t.Context(), []Intent{tt.in})
					var he *Error
					if !errors.As(err, &he) {
						t.Fatalf("ApplyIntents error = %v, want a *handlers.Error", err)
					}
					if he.Retryable() {
						t.Errorf("Retryable() = true, want false for %v", err)
					}
					if tt.is != nil && !errors.Is(err, tt.is) {
						t.Errorf("error %v does not match %v", err, tt.is)
					}
					if he.Rule() != tt.in.Rule || he.Module() != tt.in.Module || he.RecordID() != tt.in.RecordID {
						t.Errorf("error names rule %q record %s/%s, want %q %s/%s", he.Rule(), he.Module(), he.RecordID(), tt.in.Rule, tt.in.Module, tt.in.RecordID)
					}
					if tt.recipient != "" && he.Recipient() != tt.recipient {
						t.Errorf("Recipient() = %q, want %q", he.Recipient(), tt.recipient)
					}
					if got := rep.Intents[0].Err; got != err {
						t.Errorf("report error = %v, want %v", got, err)
					}
					if got := shareCalls(env.emu.Requests()).Share(); got != tt.shareCalls {
						t.Errorf("share calls = %d, want %d", got, tt.shareCalls)
					}
					if got := env.emu.MaxUsersEverShared(); got > 10 {
						t.Errorf("the record was shared with %d users at once", got)
					}
				})
			}
		})
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
