package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"github.com/crmshare/crmshare/zoho/zohoemu"
)

// exampleRules returns the rules section of deploy/examples/dev.yaml as YAML.
func exampleRules(tb testing.TB) string {
	tb.Helper()
	b, err := os.ReadFile("../../deploy/examples/dev.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		tb.Fatal(err)
	}
	m := doc.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "rules" {
			out, err := yaml.Marshal(m.Content[i+1])
			if err != nil {
				tb.Fatal(err)
			}
			return string(out)
		}
	}
	tb.Fatal("dev.yaml has no rules")
	return ""
}

// toolConfig writes the config a tool beside s would use: the service's
// stream names and rules, its NATS server and its emulator by address, no
// listeners. It returns the file and the environment holding the secrets.
func (s *e2eService) toolConfig(tb testing.TB, rules string) (string, func(string) string) {
	tb.Helper()
	body := fmt.Sprintf(`
nats:
  url: %s
  consumer:
    ack_wait: 10s
    max_deliver: 3
    backoff: [20ms]
zoho:
  api_url: %s
  accounts_url: %s
  api_version: v8
  client_id: %s
  client_secret: ${E2E_CLIENT_SECRET}
  refresh_token: ${E2E_REFRESH_TOKEN}
  timeout: 5s
telemetry:
  traces: none
  metrics_addr: ""
  log_format: text
  log_level: warn
rules:
%s
`, s.natsURL, s.svc.emuURL, s.svc.emuURL, e2eClientID, indent(rules, "  "))
	path := filepath.Join(tb.TempDir(), "tool.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		tb.Fatal(err)
	}
	env := map[string]string{"E2E_CLIENT_SECRET": s.clientSecret, "E2E_REFRESH_TOKEN": s.refreshToken}
	return path, func(k string) string { return env[k] }
}

// runTool runs crmshare with args through run and returns the exit code,
// stdout and stderr.
func runTool(tb testing.TB, getenv func(string) string, args ...string) (int, string, string) {
	tb.Helper()
	var stdout, stderr bytes.Buffer
	code := run(tb.Context(), args, strings.NewReader(""), &stdout, &stderr, getenv)
	return code, stdout.String(), stderr.String()
}

// TestReplay runs the example events through a live service, then replays
// the whole stream with the real replay command beside it.
func TestReplay(t *testing.T) {
	seed, err := zohoemu.ReadSeedFile("../../deploy/examples/emulator-seed.json")
	if err != nil {
		t.Fatal(err)
	}
	rules := exampleRules(t)
	s := startE2E(t, e2eOptions{Seed: seed, Rules: rules})
	evs, err := readEvents("../../deploy/examples/events")
	if err != nil {
		t.Fatal(err)
	}
	var last uint64
	for _, ev := range evs {
		last = s.publish(t, ev).Sequence
	}
	s.waitSettled(t, last)
	if dl := s.deadLetters(t); len(dl) != 0 {
		t.Fatalf("examples dead-lettered: %d", len(dl))
	}
	applied := s.emu.State()
	cfgPath, getenv := s.toolConfig(t, rules)
	const account = "4150868000000987001"
	accountShares := s.emu.Shares("Accounts", account)
	if len(accountShares) != 3 {
		t.Fatalf("account shares after the examples: got %d, want 3 (the team)", len(accountShares))
	}

	replay := func(t *testing.T, extra ...string) string {
		t.Helper()
		s.emu.ResetRequests()
		code, out, errOut := runTool(t, getenv, append([]string{"replay", "--config", cfgPath, "--since", "1h"}, extra...)...)
		if code != exitOK {
			t.Fatalf("replay %v: exit %d\nstdout:\n%s\nstderr:\n%s", extra, code, out, errOut)
		}
		if !strings.Contains(out, "events") || !strings.Contains(out, "zoho share calls sent") {
			t.Errorf("replay %v printed no summary table:\n%s", extra, out)
		}
		return out
	}

	t.Run("applied events are skipped without a zoho call", func(t *testing.T) {
		out := replay(t)
		if got := s.emu.Requests().Total; got != 0 {
			t.Errorf("zoho requests: got %d, want 0\n%v", got, s.emu.Requests().ByRoute)
		}
		if got := summaryValue(out, "skipped (in ledger)"); got != "4" {
			t.Errorf("summary does not report 4 skipped:\n%s", out)
		}
	})
	t.Run("force reads only and changes nothing", func(t *testing.T) {
		out := replay(t, "--force")
		st := s.emu.Requests()
		if st.Writes != 0 {
			t.Errorf("writes: got %d, want 0\n%v", st.Writes, st.ByRoute)
		}
		if st.ByMethod["GET"] == 0 {
			t.Errorf("force made no read: %v", st.ByRoute)
		}
		if diff := cmp.Diff(s.emu.State().Records, applied.Records); diff != "" {
			t.Errorf("state changed (-got +want):\n%s", diff)
		}
		if got := summaryValue(out, "handled"); got != "4" {
			t.Errorf("summary does not report 4 handled:\n%s", out)
		}
	})
	t.Run("dry run writes nothing and lists the write", func(t *testing.T) {
		if err := s.emu.SetShares("Accounts", account, accountShares[:2]); err != nil {
			t.Fatal(err)
		}
		out := replay(t, "--force", "--dry-run")
		if st := s.emu.Requests(); st.Writes != 0 {
			t.Errorf("writes: got %d, want 0\n%v", st.Writes, st.ByRoute)
		}
		if got := len(s.emu.Shares("Accounts", account)); got != 2 {
			t.Errorf("account shares after a dry run: got %d, want 2", got)
		}
		if !strings.Contains(out, "would PUT Accounts/"+account) {
			t.Errorf("dry run does not list the PUT:\n%s", out)
		}
	})
	t.Run("force puts back a share removed by hand", func(t *testing.T) {
		replay(t, "--force")
		if st := s.emu.Requests(); st.Writes != 1 {
			t.Errorf("writes: got %d, want 1 (one PUT)\n%v", st.Writes, st.ByRoute)
		}
		if diff := cmp.Diff(s.emu.State().Records, applied.Records); diff != "" {
			t.Errorf("state not restored (-got +want):\n%s", diff)
		}
	})
	t.Run("bad flags", func(t *testing.T) {
		for _, args := range [][]string{
			{"replay", "--config", cfgPath},
			{"replay", "--config", cfgPath, "--since", "yesterday"},
			{"replay", "--config", cfgPath, "--since", "1h", "--subject", "a..b"},
		} {
			if code, _, _ := runTool(t, getenv, args...); code == exitOK {
				t.Errorf("%v: exit 0, want an error", args)
			}
		}
	})
}

// summaryValue returns the value of the summary table's row named key.
func summaryValue(out, key string) string {
	for line := range strings.Lines(out) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), key+" "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
