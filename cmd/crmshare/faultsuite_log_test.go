package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/crmshare/crmshare/zoho/zohoemu"
)

// The fault suite's org: the integration user owns every record; users
// fsUID(1..n) are active and confirmed; three more users can never be share
// recipients.
const (
	fsIntegrationUser = "4150868000000225013"
	fsDisabledUser    = "4150868000007000001"
	fsUnconfirmedUser = "4150868000007000002"
	fsUnknownUser     = "4150868000007999999" // a well-formed ID the org does not have
	fsClientID        = "1000.FAULTSUITE"
	fsClientSecret    = "fs-client-secret-do-not-log"
	fsRefreshToken    = "1000.fs-refresh-token-do-not-log"
	fsSource          = "urn:crmshare:faultsuite"
	fsMaxUsers        = 10 // Zoho's direct user shares per record
)

func fsUID(n int) string   { return fmt.Sprintf("4150868000001%06d", n) }
func fsRID(n int) string   { return fmt.Sprintf("4150868000002%06d", n) }
func fsEmail(n int) string { return fmt.Sprintf("user%03d@faults.example", n) }

// fsSeed is the emulated org of the fault suite.
func fsSeed(users, records int) *zohoemu.Seed {
	s := &zohoemu.Seed{
		Org: &zohoemu.Org{ID: "org-faultsuite"},
		Clients: []zohoemu.Client{{
			ClientID: fsClientID, ClientSecret: fsClientSecret, RefreshToken: fsRefreshToken,
			UserID: fsIntegrationUser,
			Scopes: []string{"ZohoCRM.share.deals.ALL", "ZohoCRM.users.READ"},
		}},
		Users: []zohoemu.User{
			{ID: fsIntegrationUser, Email: "integration@faults.example", FullName: "Integration User", Status: "active", Confirm: true, Profile: "Administrator"},
			{ID: fsDisabledUser, Email: "former@faults.example", FullName: "Former Rep", Status: "disabled", Confirm: true},
			{ID: fsUnconfirmedUser, Email: "new.hire@faults.example", FullName: "New Hire", Status: "active", Confirm: false},
		},
	}
	for n := 1; n <= users; n++ {
		s.Users = append(s.Users, zohoemu.User{ID: fsUID(n), Email: fsEmail(n), FullName: fmt.Sprintf("User %03d", n), Status: "active", Confirm: true})
	}
	for n := 1; n <= records; n++ {
		s.Records = append(s.Records, zohoemu.Record{Module: "Deals", ID: fsRID(n), Name: fmt.Sprintf("Deal %d", n), Owner: fsIntegrationUser})
	}
	return s
}

// fsRulesYAML is the suite's ruleset: one rule per event type, each recipient
// list split by permission and share_related_records, by user ID and by email.
func fsRulesYAML() string {
	var recips strings.Builder
	for _, p := range []string{"read_only", "read_write", "full_access"} {
		for _, rel := range []bool{false, true} {
			cond := fmt.Sprintf(`g.perm == %q && g.rel == %t`, p, rel)
			fmt.Fprintf(&recips, "      - user: data.users.filter(g, %s).map(g, g.id)\n        permission: %s\n        share_related_records: %t\n", cond, p, rel)
			fmt.Fprintf(&recips, "      - email: data.emails.filter(g, %s).map(g, g.email)\n        permission: %s\n        share_related_records: %t\n", cond, p, rel)
		}
	}
	return `rules:
  - name: fs-grant
    on: {type: share.granted, source: "urn:crmshare:*"}
    action: grant
    module: Deals
    record_id: data.record
    recipients:
` + recips.String() + `  - name: fs-revoke
    on: {type: share.revoked}
    action: revoke
    module: Deals
    record_id: data.record
    recipients:
      - user: data.users.map(g, g.id)
      - email: data.emails.map(g, g.email)
  - name: fs-set
    on: {type: share.set}
    action: set
    module: Deals
    record_id: data.record
    recipients:
` + recips.String() + `  - name: fs-clear
    on: {type: share.cleared}
    action: revoke_all
    module: Deals
    record_id: data.record
`
}

// fsAccess is one user's direct share in the model.
type fsAccess struct {
	perm string
	rel  bool
}

var fsPermRank = map[string]int{"read_only": 1, "read_write": 2, "full_access": 3}

// fsRecipient is one entry of an event's users or emails list.
type fsRecipient struct {
	user  int // user number; 0 when id names a user outside 1..users
	id    string
	email bool
	perm  string
	rel   bool
}

// fsEvent is one message of the suite's stream.
type fsEvent struct {
	id      string // CloudEvent id and Nats-Msg-Id
	subject string
	data    []byte
	header  nats.Header
	record  int    // the record the event is about
	bad     string // why it must be dead-lettered; empty for a good event
	action  string // the intent a good event maps to; "" when no rule matches
}

// fsLog is a seeded random event log and the state it leads to.
type fsLog struct {
	events []fsEvent
	model  map[int]map[int]fsAccess // record → user → access, in stream order per record
	// intents counts the good events' intents by action.
	intents map[string]int
}

// fsBadKinds are the events that are permanently bad by construction.
var fsBadKinds = []string{
	"truncated-json", "invalid-cloudevent", "not-a-cloudevent",
	"rule-error-no-record", "rule-error-users-not-list",
	"disabled-user", "disabled-user-email", "unconfirmed-user", "unknown-user",
	"eleven-users-grant", "eleven-users-set",
}

// newFSLog makes total events over records records and users users. About
// 4% are permanently bad (every kind at least once), 3% match no rule, and
// the rest grant, revoke, set or revoke all; no good event ever needs more
// than 10 users on a record, so every one of them can succeed.
func newFSLog(seed uint64, total, records, users int) (*fsLog, error) {
	if users <= fsMaxUsers || total < 25*len(fsBadKinds) {
		return nil, errors.New("fault suite log: want more than 10 users and enough events for every bad kind")
	}
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	l := &fsLog{model: make(map[int]map[int]fsAccess, records), intents: make(map[string]int)}
	for r := 1; r <= records; r++ {
		l.model[r] = make(map[int]fsAccess)
	}
	perms := []string{"read_only", "read_write", "full_access"}
	recipient := func(n int) fsRecipient {
		return fsRecipient{user: n, id: fsUID(n), email: rng.IntN(4) == 0, perm: perms[rng.IntN(3)], rel: rng.IntN(2) == 0}
	}
	some := func(lo, hi int) []fsRecipient {
		var out []fsRecipient
		for range lo + rng.IntN(hi-lo+1) {
			out = append(out, recipient(1+rng.IntN(users)))
		}
		return out
	}
	distinct := func(k int) []fsRecipient {
		var out []fsRecipient
		for _, n := range rng.Perm(users)[:k] {
			out = append(out, recipient(n+1))
		}
		return out
	}
	// merged applies the handler's rule for a recipient named twice in one
	// intent: the most access wins.
	merged := func(rs []fsRecipient) map[int]fsAccess {
		out := make(map[int]fsAccess)
		for _, r := range rs {
			a, ok := out[r.user]
			if !ok || fsPermRank[r.perm] > fsPermRank[a.perm] {
				a.perm = r.perm
			}
			a.rel = a.rel || r.rel
			out[r.user] = a
		}
		return out
	}
	start := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	badSeen := 0
	for i := range total {
		id := fmt.Sprintf("fs-%06d", i+1)
		rec := 1 + rng.IntN(records)
		m := l.model[rec]
		ev := fsEvent{id: id, record: rec}
		typ, bad := "", ""
		var rs []fsRecipient
		dataExtra := map[string]any{}
		switch p := rng.IntN(100); {
		case p < 4:
			bad = fsBadKinds[badSeen%len(fsBadKinds)]
			badSeen++
		case p < 7:
			typ = "share.ignored" // no rule matches: acked, no effect
		case p < 45:
			typ, rs = "share.granted", some(1, 3)
			next := maps.Clone(m)
			for n, a := range merged(rs) {
				next[n] = a
			}
			if len(next) > fsMaxUsers {
				typ = "share.revoked" // too many for Zoho: take these away instead
				for n := range merged(rs) {
					delete(m, n)
				}
				break
			}
			for n, a := range merged(rs) {
				m[n] = a
			}
		case p < 70:
			typ, rs = "share.revoked", some(1, 3)
			for n := range merged(rs) {
				delete(m, n)
			}
		case p < 92:
			typ, rs = "share.set", some(0, 6)
			clear(m)
			for n, a := range merged(rs) {
				m[n] = a
			}
		default:
			typ = "share.cleared"
			clear(m)
		}
		if bad != "" {
			typ, rs, dataExtra = fsBadEvent(bad, rng, distinct, users)
		}
		ev.bad = bad
		if bad == "" {
			switch typ {
			case "share.granted":
				ev.action = "grant"
			case "share.revoked":
				ev.action = "revoke"
			case "share.set":
				ev.action = "set"
			case "share.cleared":
				ev.action = "revoke_all"
			}
			if ev.action != "" {
				l.intents[ev.action]++
			}
		}
		ev.subject = "crm.events." + typ
		ev.header = nats.Header{}
		ev.header.Set(nats.MsgIdHdr, id)
		switch bad {
		case "truncated-json":
			ev.header.Set("Content-Type", "application/cloudevents+json")
			ev.data = []byte(`{"specversion":"1.0","id":"` + id + `","source":"` + fsSource + `","type":"share.granted","data":{"record":`)
		case "invalid-cloudevent":
			ev.header.Set("Content-Type", "application/cloudevents+json")
			ev.data = []byte(`{"specversion":"1.0","id":"` + id + `","type":"share.granted","data":{}}`) // no source
		case "not-a-cloudevent":
			ev.data = []byte("grant user 7 on deal 3, thanks")
		default:
			data := map[string]any{"record": fsRID(rec), "users": []any{}, "emails": []any{}}
			var us, es []any
			for _, r := range rs {
				if r.email {
					email := fsEmail(r.user)
					if r.user == 0 {
						email = r.id
					}
					es = append(es, map[string]any{"email": email, "perm": r.perm, "rel": r.rel})
				} else {
					us = append(us, map[string]any{"id": r.id, "perm": r.perm, "rel": r.rel})
				}
			}
			if us != nil {
				data["users"] = us
			}
			if es != nil {
				data["emails"] = es
			}
			for k, v := range dataExtra {
				if v == nil {
					delete(data, k)
					continue
				}
				data[k] = v
			}
			ce := map[string]any{
				"specversion": "1.0", "id": id, "source": fsSource, "type": typ,
				"subject": "Deals/" + fsRID(rec), "time": start.Add(time.Duration(i) * time.Second).Format(time.RFC3339),
				"datacontenttype": "application/json", "data": data,
			}
			b, err := json.Marshal(ce)
			if err != nil {
				return nil, fmt.Errorf("fault suite log: event %s: %w", id, err)
			}
			ev.header.Set("Content-Type", "application/cloudevents+json")
			ev.data = b
		}
		l.events = append(l.events, ev)
	}
	if badSeen < len(fsBadKinds) {
		return nil, fmt.Errorf("fault suite log: only %d of %d bad kinds in %d events; change the seed", badSeen, len(fsBadKinds), total)
	}
	return l, nil
}

// fsBadEvent makes the type, recipients and data overrides of a bad event.
// A nil override removes the key.
func fsBadEvent(kind string, rng *rand.Rand, distinct func(int) []fsRecipient, users int) (string, []fsRecipient, map[string]any) {
	one := func(id string, email bool) []fsRecipient {
		return []fsRecipient{{id: id, email: email, perm: "read_only"}}
	}
	switch kind {
	case "rule-error-no-record":
		return "share.granted", distinct(1), map[string]any{"record": nil}
	case "rule-error-users-not-list":
		return "share.set", nil, map[string]any{"users": "everyone"}
	case "disabled-user":
		return "share.granted", one(fsDisabledUser, false), nil
	case "disabled-user-email":
		return "share.granted", one("former@faults.example", true), nil
	case "unconfirmed-user":
		return "share.granted", one(fsUnconfirmedUser, false), nil
	case "unknown-user":
		return "share.granted", one(fsUnknownUser, false), nil
	case "eleven-users-grant":
		return "share.granted", distinct(min(11, users)), nil
	case "eleven-users-set":
		return "share.set", distinct(min(11+rng.IntN(2), users)), nil
	}
	return "share.granted", nil, nil // decode failures: the body is replaced
}

// entries is the model's final direct shares of record rec, sorted as the
// emulator sorts them.
func (l *fsLog) entries(rec int) []zohoemu.Entry {
	var out []zohoemu.Entry
	for n, a := range l.model[rec] {
		out = append(out, zohoemu.Entry{Type: "users", ID: fsUID(n), Permission: a.perm, ShareRelated: a.rel})
	}
	slices.SortFunc(out, func(a, b zohoemu.Entry) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// badIDs lists the events that must end up dead-lettered, sorted.
func (l *fsLog) badIDs() []string {
	var out []string
	for _, ev := range l.events {
		if ev.bad != "" {
			out = append(out, ev.id)
		}
	}
	slices.Sort(out)
	return out
}

// history describes the last n events about record rec, for failure messages.
func (l *fsLog) history(rec, n int) string {
	var out []string
	for _, ev := range l.events {
		if ev.record != rec {
			continue
		}
		d := ev.id + " " + strings.TrimPrefix(ev.subject, "crm.events.")
		if ev.bad != "" {
			d += " (bad: " + ev.bad + ")"
		} else if ev.action != "" {
			d += " " + string(fsDataOf(ev.data))
		}
		out = append(out, d)
	}
	return strings.Join(out[max(0, len(out)-n):], "; ")
}

// fsDataOf extracts the data member of a structured event, or nil.
func fsDataOf(b []byte) json.RawMessage {
	var ce struct {
		Data json.RawMessage `json:"data"`
	}
	if json.Unmarshal(b, &ce) != nil {
		return nil
	}
	return ce.Data
}
