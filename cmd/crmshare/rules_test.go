package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/crmshare/crmshare/handlers"
)

const (
	devConfig        = "../../deploy/examples/dev.yaml"
	exampleEvents    = "../../deploy/examples/events"
	expectedExamples = "../../handlers/testdata/examples" // NAME.intents.json per example event
)

func readIntents(t *testing.T, b []byte) []handlers.Intent {
	t.Helper()
	var intents []handlers.Intent
	if err := json.Unmarshal(b, &intents); err != nil {
		t.Fatalf("decode intents: %v\n%s", err, b)
	}
	return intents
}

// TestRulesTestExamples runs `crmshare rules test` with the dev config on
// every example event and compares with the expected intents.
func TestRulesTestExamples(t *testing.T) {
	events, err := filepath.Glob(filepath.Join(exampleEvents, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(events) < 4 {
		t.Fatalf("found %d example events, want at least 4", len(events))
	}
	for _, ev := range events {
		name := strings.TrimSuffix(filepath.Base(ev), ".json")
		t.Run(name, func(t *testing.T) {
			got := runCLI(t, nil, nil, "rules", "test", "--config", devConfig, "--event", ev)
			if got.code != exitOK {
				t.Fatalf("exit code = %d, stderr:\n%s", got.code, got.stderr)
			}
			want, err := os.ReadFile(filepath.Join(expectedExamples, name+".intents.json"))
			if err != nil {
				t.Fatal(err)
			}
			gotIntents, wantIntents := readIntents(t, []byte(got.stdout)), readIntents(t, want)
			if len(gotIntents) == 0 {
				t.Fatal("no intents")
			}
			if diff := cmp.Diff(gotIntents, wantIntents); diff != "" {
				t.Errorf("intents (-got +want):\n%s", diff)
			}
		})
	}
}

func TestRulesTestStdinAndNoMatch(t *testing.T) {
	ev := `{"specversion":"1.0","id":"1","source":"urn:x","type":"invoice.paid","data":{"deal_id":"1"}}`
	got := runCLI(t, nil, strings.NewReader(ev), "rules", "test", "--config", devConfig, "--event", "-")
	if got.code != exitOK {
		t.Fatalf("exit code = %d, stderr:\n%s", got.code, got.stderr)
	}
	if diff := cmp.Diff(strings.TrimSpace(got.stdout), "[]"); diff != "" {
		t.Errorf("stdout (-got +want):\n%s", diff)
	}
}

func TestRulesTestFailures(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	numberID := write("number-id.json", `{"specversion":"1.0","id":"e1","source":"urn:acme:routing","type":"deal.closed","data":{"deal_id":4150868000002515001}}`)
	noID := write("no-id.json", `{"specversion":"1.0","source":"urn:acme:routing","type":"deal.closed","data":{}}`)
	notJSON := write("not-json.json", `specversion: 1.0`)
	badRules := write("bad-rules.yaml", "rules:\n  - name: r\n    on: {type: x}\n    action: grant\n    module: Deals\n    record_id: data.id\n")
	closed := filepath.Join(exampleEvents, "deal.closed.json")
	tests := []struct {
		name        string
		config      string
		event       string
		wantInError string // what stderr must name, e.g. the rule
	}{
		{"rule error", devConfig, numberID, "closed-deals-are-private-again"},
		{"event without id", devConfig, noID, "id"},
		{"event not JSON", devConfig, notJSON, "not-json.json"},
		{"event file missing", devConfig, filepath.Join(dir, "nope.json"), "nope.json"},
		{"config file missing", filepath.Join(dir, "nope.yaml"), closed, "nope.yaml"},
		{"bad rules", badRules, closed, "line 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := runCLI(t, nil, nil, "rules", "test", "--config", tt.config, "--event", tt.event)
			if got.code != exitFail {
				t.Errorf("exit code = %d, want %d", got.code, exitFail)
			}
			if got.stdout != "" {
				t.Errorf("stdout = %q, want nothing", got.stdout)
			}
			if !strings.Contains(got.stderr, tt.wantInError) {
				t.Errorf("stderr does not name %q:\n%s", tt.wantInError, got.stderr)
			}
		})
	}
}

// TestRulesTestOffline: rules test needs neither Zoho credentials nor a
// reachable NATS; problems outside the rules do not stop it.
func TestRulesTestOffline(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "prod.yaml")
	content := `nats:
  url: nats://nats.internal:4222
zoho:
  client_secret: ${ZOHO_CLIENT_SECRET}
rules:
  - name: closed
    on: {type: deal.closed}
    action: revoke_all
    module: Deals
    record_id: data.deal_id
`
	if err := os.WriteFile(cfg, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	got := runCLI(t, nil, nil, "rules", "test", "--config", cfg, "--event", filepath.Join(exampleEvents, "deal.closed.json"))
	if got.code != exitOK {
		t.Fatalf("exit code = %d, stderr:\n%s", got.code, got.stderr)
	}
	want := []handlers.Intent{{Rule: "closed", Module: "Deals", RecordID: "4150868000002515001", Action: handlers.ActionRevokeAll}}
	if diff := cmp.Diff(readIntents(t, []byte(got.stdout)), want); diff != "" {
		t.Errorf("intents (-got +want):\n%s", diff)
	}
	// The same file is not a valid service config: config check says why.
	check := runCLI(t, nil, nil, "config", "check", "--config", cfg)
	if check.code != exitFail {
		t.Errorf("config check exit code = %d, want %d", check.code, exitFail)
	}
}
