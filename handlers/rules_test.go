package handlers

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/go-cmp/cmp"

	"github.com/crmshare/crmshare/zoho"
)

// exampleRules are the rules of deploy/examples/dev.yaml, written as Go. The
// cmd tests run the YAML file through `crmshare rules test` against the same
// expected intents (testdata/examples), so the two cannot drift apart.
func exampleRules() []RuleConfig {
	return []RuleConfig{
		{
			Name: "share-deal-with-assignee", Type: "deal.assigned", Source: "urn:acme:*",
			When: "data.amount > 0", Action: "grant", Module: "Deals", RecordID: "data.deal_id",
			Recipients: []RecipientConfig{
				{User: "data.assignee.zoho_user_id", Permission: "read_write", ShareRelated: true},
				{Email: `data.watchers.filter(w, w.contains("@"))`, Permission: "read_only"},
				{User: `data.watchers.filter(w, !w.contains("@"))`, Permission: "read_only"},
			},
		},
		{
			Name: "unshare-previous-assignee", Type: "deal.reassigned",
			When:   "has(data.previous_assignee) && data.previous_assignee != null",
			Action: "revoke", Module: "Deals", RecordID: "data.deal_id",
			Recipients: []RecipientConfig{{User: "data.previous_assignee.zoho_user_id"}},
		},
		{
			Name: "share-deal-with-new-assignee", Type: "deal.reassigned",
			Action: "grant", Module: "Deals", RecordID: "data.deal_id",
			Recipients: []RecipientConfig{{User: "data.assignee.zoho_user_id", Permission: "read_write", ShareRelated: true}},
		},
		{
			Name: "account-team", Type: "account.team.changed", Subject: "Accounts/*",
			Action: "set", Module: "Accounts", RecordID: "data.account_id",
			Recipients: []RecipientConfig{
				{Email: `data.team.filter(m, m.role == "owner").map(m, m.email)`, Permission: "full_access"},
				{Email: `data.team.filter(m, m.role != "owner").map(m, m.email)`, Permission: "read_only"},
			},
		},
		{
			Name: "closed-deals-are-private-again", Type: "deal.closed",
			Action: "revoke_all", Module: "Deals", RecordID: "data.deal_id",
		},
	}
}

// edgeRules exercise what the examples do not; they match other event types.
func edgeRules() []RuleConfig {
	return []RuleConfig{
		{
			Name: "contact-team", Type: "contact.*", Source: "urn:acme:*", Subject: "Contacts/*",
			Action: "grant", Module: "Contacts", RecordID: "data.contact_id",
			Recipients: []RecipientConfig{
				{User: "data.user_ids", Permission: "read_only"},
				{Email: "data.?emails.orValue([])", Permission: "read_write", ShareRelated: true},
			},
		},
		{
			Name: "big-lead", Type: "lead.converted", When: "data.amount > 1000.5",
			Action: "grant", Module: "Leads", RecordID: "data.lead_id",
			Recipients: []RecipientConfig{{User: "data.owner_id", Permission: "full_access"}},
		},
		{
			Name: "flagged", Type: "flag.set", When: "data.flag",
			Action: "grant", Module: "Deals", RecordID: "data.deal_id",
			Recipients: []RecipientConfig{{User: "data.owner_id"}},
		},
		{
			Name: "quiet-nobody", Type: "quiet.event",
			Action: "grant", Module: "Deals", RecordID: "data.deal_id",
			Recipients: []RecipientConfig{
				{User: "data.owner"},
				{Email: "data.emails"},
				{User: "data.backup"},
			},
		},
		{
			Name: "quiet-roles", Type: "quiet.event",
			Action: "grant", Module: "Deals", RecordID: "data.deal_id",
			Recipients: []RecipientConfig{
				{User: "data.owner"},
				{Role: "data.role_ids", Permission: "read_write"},
			},
		},
		{
			// A glob rule listed before an exact one: output follows rule order.
			Name: "ticket-any", Type: "ticket.*",
			Action: "grant", Module: "Cases", RecordID: "string(data.case_no)",
			Recipients: []RecipientConfig{{User: "event.extensions.agentid", Permission: "read_write"}},
		},
		{
			Name: "ticket-escalated", Type: "ticket.escalated",
			When:   `event.time >= timestamp("2026-01-01T00:00:00Z")`,
			Action: "set", Module: "Cases", RecordID: `event.subject.split("/")[1]`,
			Recipients: []RecipientConfig{{Group: `["4150868000002000101"]`, Permission: "read_write"}},
		},
		{
			Name: "team-disbanded", Type: "team.disbanded",
			Action: "set", Module: "Accounts", RecordID: "data.account_id",
			Recipients: []RecipientConfig{{Email: "data.team.map(m, m.email)"}},
		},
		{
			Name: "broken", Type: "broken.*",
			Action: "grant", Module: "Deals", RecordID: "data.deal_id",
			Recipients: []RecipientConfig{
				{User: "data.users"},
				{Email: "data.?emails.orValue(null)"},
			},
		},
	}
}

func testRules() []RuleConfig { return append(exampleRules(), edgeRules()...) }

func mustRules(tb testing.TB, rules []RuleConfig) *Rules {
	tb.Helper()
	r, err := NewRules(RulesConfig{Rules: rules, APIVersion: "v8"})
	if err != nil {
		tb.Fatalf("NewRules: %v", err)
	}
	return r
}

// mapCase is one file of testdata/cases: an event and either the intents it
// maps to or the rule error it causes.
type mapCase struct {
	Event   json.RawMessage `json:"event"`
	Intents []Intent        `json:"intents"`
	Error   *struct {
		Rule  string `json:"rule"`
		Field string `json:"field"`
	} `json:"error"`
}

func readEvent(tb testing.TB, b []byte) cloudevents.Event {
	tb.Helper()
	var ev cloudevents.Event
	if err := json.Unmarshal(b, &ev); err != nil {
		tb.Fatalf("decode event: %v", err)
	}
	if err := ev.Validate(); err != nil {
		tb.Fatalf("invalid event: %v", err)
	}
	return ev
}

func readFile(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// exampleEventsDir holds the example events the README and dev.yaml use.
const exampleEventsDir = "../deploy/examples/events"

// TestMapExamples maps each example event of deploy/examples/events and
// compares with testdata/examples/NAME.intents.json.
func TestMapExamples(t *testing.T) {
	r := mustRules(t, testRules())
	events, err := filepath.Glob(filepath.Join(exampleEventsDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(events) < 4 {
		t.Fatalf("found %d example events in %s, want at least 4", len(events), exampleEventsDir)
	}
	for _, file := range events {
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		t.Run(name, func(t *testing.T) {
			ev := readEvent(t, readFile(t, file))
			var want []Intent
			if err := json.Unmarshal(readFile(t, filepath.Join("testdata", "examples", name+".intents.json")), &want); err != nil {
				t.Fatal(err)
			}
			got, err := r.Map(ev)
			if err != nil {
				t.Fatalf("Map: %v", err)
			}
			if len(got) == 0 {
				t.Fatal("no intents; every example event should match a rule")
			}
			if diff := cmp.Diff(got, want); diff != "" {
				t.Errorf("intents (-got +want):\n%s", diff)
			}
		})
	}
}

// TestMapCases runs every testdata/cases/*.json file.
func TestMapCases(t *testing.T) {
	r := mustRules(t, testRules())
	files, err := filepath.Glob(filepath.Join("testdata", "cases", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no cases in testdata/cases")
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".json"), func(t *testing.T) {
			var c mapCase
			if err := json.Unmarshal(readFile(t, file), &c); err != nil {
				t.Fatalf("decode case: %v", err)
			}
			ev := readEvent(t, c.Event)
			got, err := r.Map(ev)
			if c.Error != nil {
				var re *RuleError
				if !errors.As(err, &re) {
					t.Fatalf("Map = %v, %v; want a *RuleError", got, err)
				}
				if re.Retryable() {
					t.Error("RuleError is retryable; rule errors are permanent")
				}
				gotErr := struct{ Rule, Field string }{re.Rule(), re.Field}
				wantErr := struct{ Rule, Field string }{c.Error.Rule, c.Error.Field}
				if diff := cmp.Diff(gotErr, wantErr); diff != "" {
					t.Errorf("error %q (-got +want):\n%s", err, diff)
				}
				if got != nil {
					t.Errorf("intents with an error = %v, want none", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Map: %v", err)
			}
			if diff := cmp.Diff(got, c.Intents); diff != "" {
				t.Errorf("intents (-got +want):\n%s", diff)
			}
		})
	}
}

func TestKeys(t *testing.T) {
	r := mustRules(t, testRules())
	tests := []struct {
		name  string
		event string
		want  []string
	}{
		{"grant", "deal.assigned", []string{"Deals/4150868000002515001"}},
		{"two rules, one record", "deal.reassigned", []string{"Deals/4150868000002515001"}},
		{"set", "account.team.changed", []string{"Accounts/4150868000000987001"}},
		{"revoke_all", "deal.closed", []string{"Deals/4150868000002515001"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := readEvent(t, readFile(t, filepath.Join(exampleEventsDir, tt.event+".json")))
			got := r.Keys(ev)
			if diff := cmp.Diff(got, tt.want); diff != "" {
				t.Errorf("Keys (-got +want):\n%s", diff)
			}
		})
	}
	t.Run("no match", func(t *testing.T) {
		ev := cloudevents.New()
		ev.SetID("1")
		ev.SetSource("urn:x")
		ev.SetType("nothing.matches")
		if got := r.Keys(ev); got != nil {
			t.Errorf("Keys = %v, want nil", got)
		}
	})
	t.Run("two records, rule order", func(t *testing.T) {
		ev := cloudevents.New()
		ev.SetID("1")
		ev.SetSource("urn:x")
		ev.SetType("ticket.escalated")
		ev.SetSubject("Cases/22")
		ev.SetTime(mustTime(t, "2026-05-01T00:00:00Z"))
		if err := ev.SetData("application/json", map[string]any{"case_no": json.Number("11")}); err != nil {
			t.Fatal(err)
		}
		want := []string{"Cases/11", "Cases/22"}
		if diff := cmp.Diff(r.Keys(ev), want); diff != "" {
			t.Errorf("Keys (-got +want):\n%s", diff)
		}
	})
}

// TestMapUnmatchedEventIsNotDecoded: an event no rule's type matches is not
// an error even when its payload is garbage.
func TestMapUnmatchedEventIsNotDecoded(t *testing.T) {
	r := mustRules(t, testRules())
	ev := cloudevents.New()
	ev.SetID("1")
	ev.SetSource("urn:x")
	ev.SetType("nobody.cares")
	ev.DataEncoded = []byte("{not json")
	ev.SetDataContentType("application/json")
	got, err := r.Map(ev)
	if err != nil || got != nil {
		t.Errorf("Map = %v, %v; want nil, nil", got, err)
	}
}

// TestMapCostLimit: an expression that would run away is stopped and reported.
func TestMapCostLimit(t *testing.T) {
	r, err := NewRules(RulesConfig{CostLimit: 1000, Rules: []RuleConfig{{
		Name: "expensive", Type: "x", Action: "grant", Module: "Deals", RecordID: "'1'",
		When:       "data.list.all(a, data.list.all(b, data.list.all(c, a + b + c >= 0)))",
		Recipients: []RecipientConfig{{User: "'2'"}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	list := make([]any, 100)
	for i := range list {
		list[i] = i
	}
	ev := cloudevents.New()
	ev.SetID("1")
	ev.SetSource("urn:x")
	ev.SetType("x")
	if err := ev.SetData("application/json", map[string]any{"list": list}); err != nil {
		t.Fatal(err)
	}
	got, err := r.Map(ev)
	var re *RuleError
	if !errors.As(err, &re) || re.Field != "when" {
		t.Fatalf("Map = %v, %v; want a RuleError on when", got, err)
	}
}

func TestNewRulesNoRules(t *testing.T) {
	r, err := NewRules(RulesConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ev := readEvent(t, readFile(t, filepath.Join(exampleEventsDir, "deal.assigned.json")))
	got, err := r.Map(ev)
	if err != nil || got != nil {
		t.Errorf("Map = %v, %v; want nil, nil", got, err)
	}
}

// problemKey is what a test compares of a RuleConfigError.
type problemKey struct {
	Index int
	Field string
	Line  int
}

// problems lists the RuleConfigErrors inside a joined error.
func problems(t *testing.T, err error) []problemKey {
	t.Helper()
	if err == nil {
		return nil
	}
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("error %v is not a joined error", err)
	}
	var out []problemKey
	for _, e := range joined.Unwrap() {
		var ce *RuleConfigError
		if !errors.As(e, &ce) {
			t.Fatalf("problem %v is not a *RuleConfigError", e)
		}
		if ce.Err == nil || ce.Error() == "" {
			t.Errorf("problem %+v has no message", ce)
		}
		out = append(out, problemKey{ce.Index, ce.Field, ce.Line})
	}
	return out
}

func TestNewRulesReportsEveryProblem(t *testing.T) {
	ok := func(name string) RuleConfig {
		return RuleConfig{Name: name, Type: "a.b", Action: "grant", Module: "Deals", RecordID: "data.id",
			Recipients: []RecipientConfig{{User: "data.user"}}}
	}
	eleven := `["1","2","3","4","5","6","7","8","9","10","11"]`
	tests := []struct {
		name       string
		apiVersion string
		rules      []RuleConfig
		want       []problemKey
	}{
		{"valid", "v8", []RuleConfig{ok("a"), ok("b")}, nil},
		{
			name: "everything wrong in one rule", apiVersion: "v8",
			rules: []RuleConfig{{
				Line: 10, Lines: map[string]int{"on.type": 11, "when": 12, "record_id": 14},
				Type: "deal.[", Source: "urn:[", Subject: `Deals/\`, When: "data.amount +", Action: "share",
				Module: "Deals/x", RecordID: "1",
				Recipients: []RecipientConfig{
					{User: "data.ids", Permission: "admin", Line: 16},
					{User: "data.a", Email: "data.b", Line: 18},
					{Line: 19},
					{User: "dat.x", Line: 20},
					{User: "1", Line: 21},
					{User: eleven, Line: 22},
				},
			}},
			want: []problemKey{
				{0, "name", 10}, {0, "on.type", 11}, {0, "on.source", 10}, {0, "on.subject", 10},
				{0, "action", 10}, {0, "module", 10}, {0, "when", 12}, {0, "record_id", 14},
				{0, "recipients[0].permission", 16}, {0, "recipients[1]", 18}, {0, "recipients[2]", 19},
				{0, "recipients[3].user", 20}, {0, "recipients[4].user", 21}, {0, "recipients[5].user", 22},
			},
		},
		{
			name: "when and record_id of the wrong type", apiVersion: "v8",
			rules: []RuleConfig{
				func() RuleConfig { r := ok("w"); r.When = `"yes"`; r.RecordID = "data.id == 1"; return r }(),
				func() RuleConfig { r := ok("e"); r.Recipients = []RecipientConfig{{Email: "{'a': 1}"}}; return r }(),
			},
			want: []problemKey{{0, "when", 0}, {0, "record_id", 0}, {1, "recipients[0].email", 0}},
		},
		{
			name: "duplicate names and missing fields", apiVersion: "v8",
			rules: []RuleConfig{ok("dup"), ok("dup"), {Name: "empty"}},
			want: []problemKey{
				{1, "name", 0},
				{2, "on.type", 0}, {2, "action", 0}, {2, "module", 0}, {2, "record_id", 0},
			},
		},
		{
			name: "recipients and actions", apiVersion: "v8",
			rules: []RuleConfig{
				func() RuleConfig { r := ok("ra"); r.Action = "revoke_all"; return r }(),
				func() RuleConfig { r := ok("g"); r.Recipients = nil; return r }(),
				func() RuleConfig { r := ok("rv"); r.Action = "revoke"; r.Recipients = nil; return r }(),
				func() RuleConfig { r := ok("s"); r.Action = "set"; r.Recipients = nil; return r }(),
				func() RuleConfig {
					r := ok("groups")
					r.Recipients = []RecipientConfig{{Group: `["1","2","3","4","5","6"]`}}
					return r
				}(),
			},
			want: []problemKey{{0, "recipients", 0}, {1, "recipients", 0}, {2, "recipients", 0}, {4, "recipients[0].group", 0}},
		},
		{
			name: "groups and roles need v8", apiVersion: "v2.1",
			rules: []RuleConfig{func() RuleConfig {
				r := ok("gr")
				r.Recipients = []RecipientConfig{{Group: "'1'", Line: 5}, {Role: "'2'", Line: 6}, {User: "'3'"}}
				return r
			}()},
			want: []problemKey{{0, "recipients[0].group", 5}, {0, "recipients[1].role", 6}},
		},
		{
			name: "unknown api version", apiVersion: "v7",
			rules: []RuleConfig{ok("a")},
			want:  []problemKey{{-1, "api_version", 0}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewRules(RulesConfig{Rules: tt.rules, APIVersion: tt.apiVersion})
			got := problems(t, err)
			if diff := cmp.Diff(got, tt.want); diff != "" {
				t.Errorf("problems (-got +want):\n%s\nerror:\n%v", diff, err)
			}
			if (err == nil) != (r != nil) {
				t.Errorf("NewRules = %v, %v; want exactly one of them", r, err)
			}
		})
	}
}

func TestRuleErrorIsPermanent(t *testing.T) {
	err := error(&RuleError{RuleName: "r", Field: "record_id", Expr: "data.id", Err: errors.New("no such key: id")})
	var classified interface {
		Retryable() bool
		Rule() string
	}
	if !errors.As(err, &classified) {
		t.Fatal("RuleError does not have Retryable and Rule")
	}
	got := struct {
		Retryable bool
		Rule      string
	}{classified.Retryable(), classified.Rule()}
	want := struct {
		Retryable bool
		Rule      string
	}{false, "r"}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("(-got +want):\n%s", diff)
	}
}

func TestIntentJSONRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   Intent
		json string
	}{
		{
			name: "grant",
			in: Intent{Rule: "r", Module: "Deals", RecordID: "1", Action: ActionGrant, Recipients: []Grant{
				{Recipient: zoho.Recipient{Type: zoho.RecipientUser, ID: "2"}, Permission: zoho.PermissionReadWrite, ShareRelated: true},
				{Recipient: zoho.Recipient{Type: zoho.RecipientUser}, Email: "a@b.example", Permission: zoho.PermissionReadOnly},
				{Recipient: zoho.Recipient{Type: zoho.RecipientGroup, ID: "3"}, Permission: zoho.PermissionFullAccess},
				{Recipient: zoho.Recipient{Type: zoho.RecipientRole, ID: "4"}, Permission: zoho.PermissionReadOnly},
			}},
			json: `{"rule":"r","action":"grant","module":"Deals","record_id":"1","recipients":[` +
				`{"user":"2","permission":"read_write","share_related_records":true},` +
				`{"email":"a@b.example","permission":"read_only","share_related_records":false},` +
				`{"group":"3","permission":"full_access","share_related_records":false},` +
				`{"role":"4","permission":"read_only","share_related_records":false}]}`,
		},
		{
			name: "revoke has no permission",
			in: Intent{Rule: "r", Module: "Deals", RecordID: "1", Action: ActionRevoke, Recipients: []Grant{
				{Recipient: zoho.Recipient{Type: zoho.RecipientUser, ID: "2"}},
			}},
			json: `{"rule":"r","action":"revoke","module":"Deals","record_id":"1","recipients":[{"user":"2","share_related_records":false}]}`,
		},
		{
			name: "set to nobody keeps an empty list",
			in:   Intent{Rule: "r", Module: "Accounts", RecordID: "1", Action: ActionSet},
			json: `{"rule":"r","action":"set","module":"Accounts","record_id":"1","recipients":[]}`,
		},
		{
			name: "revoke_all",
			in:   Intent{Rule: "r", Module: "Deals", RecordID: "1", Action: ActionRevokeAll},
			json: `{"rule":"r","action":"revoke_all","module":"Deals","record_id":"1"}`,
		},
		{
			name: "resolved email",
			in: Intent{Rule: "r", Module: "Deals", RecordID: "1", Action: ActionGrant, Recipients: []Grant{
				{Recipient: zoho.Recipient{Type: zoho.RecipientUser, ID: "2"}, Email: "a@b.example", Permission: zoho.PermissionReadOnly},
			}},
			json: `{"rule":"r","action":"grant","module":"Deals","record_id":"1","recipients":[{"user":"2","email":"a@b.example","permission":"read_only","share_related_records":false}]}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(b), tt.json); diff != "" {
				t.Errorf("Marshal (-got +want):\n%s", diff)
			}
			var back Intent
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(back, tt.in); diff != "" {
				t.Errorf("round trip (-got +want):\n%s", diff)
			}
		})
	}
}

func TestIntentJSONRejects(t *testing.T) {
	tests := []struct {
		name string
		json string
	}{
		{"unknown action", `{"rule":"r","action":"share","module":"Deals","record_id":"1"}`},
		{"unknown permission", `{"rule":"r","action":"grant","module":"Deals","record_id":"1","recipients":[{"user":"1","permission":"admin"}]}`},
		{"no recipient", `{"rule":"r","action":"grant","module":"Deals","record_id":"1","recipients":[{"permission":"read_only"}]}`},
		{"user and group", `{"rule":"r","action":"grant","module":"Deals","record_id":"1","recipients":[{"user":"1","group":"2"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var in Intent
			if err := json.Unmarshal([]byte(tt.json), &in); err == nil {
				t.Errorf("Unmarshal = %+v, nil; want an error", in)
			}
		})
	}
	if _, err := json.Marshal(Intent{Rule: "r"}); err == nil {
		t.Error("Marshal of an intent without action succeeded")
	}
}

func mustTime(tb testing.TB, s string) time.Time {
	tb.Helper()
	ts, err := time.Parse(time.RFC3339, s)
	if err != nil {
		tb.Fatal(err)
	}
	return ts
}

// TestMapConcurrent: one *Rules serves every worker at once (run with -race).
func TestMapConcurrent(t *testing.T) {
	r := mustRules(t, testRules())
	ev := readEvent(t, readFile(t, filepath.Join(exampleEventsDir, "deal.reassigned.json")))
	want, err := r.Map(ev)
	if err != nil {
		t.Fatal(err)
	}
	const workers = 4
	results := make(chan []Intent, workers)
	errs := make(chan error, workers)
	for range workers {
		go func() {
			got, err := r.Map(ev)
			results <- got
			errs <- err
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Error(err)
		}
		if diff := cmp.Diff(<-results, want); diff != "" {
			t.Errorf("concurrent Map (-got +want):\n%s", diff)
		}
	}
}
