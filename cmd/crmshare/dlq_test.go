package main

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/crmshare/crmshare/zoho/zohoemu"
)

// TestDLQRedrive dead-letters an event Zoho refuses, fixes the cause, and
// redrives it with the real dlq commands beside the running service.
func TestDLQRedrive(t *testing.T) {
	s := startE2E(t, e2eOptions{})
	cfgPath, getenv := s.toolConfig(t, e2eRules)

	// Zoho refuses the share permanently once: the event is dead-lettered.
	s.emu.SetFaults(zohoemu.Faults{Rules: []zohoemu.Fault{{Code: "SHARE_LIMIT_EXCEEDED", Methods: []string{"POST"}, Count: 1}}})
	ev := e2eEvent("ev-dlq-1", "deal.assigned", map[string]any{"deal_id": e2eDeal, "user_id": e2eMaria})
	s.waitSettled(t, s.publish(t, ev).Sequence)
	if n := len(s.deadLetters(t)); n != 1 {
		t.Fatalf("dead letters: got %d, want 1", n)
	}
	if got := s.emu.Shares("Deals", e2eDeal); len(got) != 0 {
		t.Fatalf("deal shared despite the refusal: %v", got)
	}

	code, out, errOut := runTool(t, getenv, "dlq", "list", "--config", cfgPath)
	if code != exitOK || !strings.Contains(out, "ev-dlq-1") || !strings.Contains(out, "LIMIT_EXCEEDED") || !strings.Contains(out, "1 dead letter(s)") {
		t.Fatalf("dlq list: exit %d\n%s\n%s", code, out, errOut)
	}
	seq := strings.Fields(strings.Split(out, "\n")[1])[0]
	code, out, errOut = runTool(t, getenv, "dlq", "show", seq, "--config", cfgPath)
	if code != exitOK || !strings.Contains(out, "Crmshare-Error: permanent failure") || !strings.Contains(out, `"ev-dlq-1"`) {
		t.Fatalf("dlq show: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, _ = runTool(t, getenv, "dlq", "redrive", "--config", cfgPath, "--all", "--dry-run")
	if code != exitOK || !strings.Contains(out, "would redrive "+seq) {
		t.Fatalf("dlq redrive --dry-run: exit %d\n%s", code, out)
	}
	if n := len(s.deadLetters(t)); n != 1 {
		t.Fatalf("a dry-run redrive removed the dead letter: %d left", n)
	}

	s.emu.SetFaults(zohoemu.Faults{}) // the cause is fixed
	s.emu.ResetRequests()
	code, out, errOut = runTool(t, getenv, "dlq", "redrive", "--config", cfgPath, "--seq", seq)
	if code != exitOK {
		t.Fatalf("dlq redrive: exit %d\n%s\n%s", code, out, errOut)
	}
	if n := len(s.deadLetters(t)); n != 0 {
		t.Errorf("dead letters after redrive: got %d, want 0", n)
	}
	st, err := s.js.Stream(t.Context(), s.cfg.NATS.Stream.Name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	s.waitSettled(t, info.State.LastSeq)
	want := []zohoemu.Entry{{Type: "users", ID: e2eMaria, Permission: "read_write"}}
	waitFor(t, "deal shared after redrive", func() error {
		if diff := cmp.Diff(s.emu.Shares("Deals", e2eDeal), want); diff != "" {
			return &diffError{diff}
		}
		return nil
	})
	if got := s.emu.Requests().Writes; got != 1 {
		t.Errorf("writes after redrive: got %d, want 1", got)
	}
	// A second redrive of the same sequence finds nothing.
	if code, _, _ := runTool(t, getenv, "dlq", "redrive", "--config", cfgPath, "--seq", seq); code == exitOK {
		t.Errorf("redrive of a removed dead letter: exit 0")
	}

	t.Run("purge", func(t *testing.T) {
		s.emu.SetFaults(zohoemu.Faults{Rules: []zohoemu.Fault{{Code: "SHARE_LIMIT_EXCEEDED", Methods: []string{"POST"}, Count: 1}}})
		s.waitSettled(t, s.publish(t, e2eEvent("ev-dlq-2", "deal.assigned", map[string]any{"deal_id": e2eDeal2, "user_id": e2eSam})).Sequence)
		code, out, _ := runTool(t, getenv, "dlq", "purge", "--config", cfgPath)
		if code != exitOK || !strings.Contains(out, "purged 1 ") {
			t.Fatalf("dlq purge: exit %d\n%s", code, out)
		}
		if n := len(s.deadLetters(t)); n != 0 {
			t.Errorf("dead letters after purge: %d", n)
		}
	})
	t.Run("usage errors", func(t *testing.T) {
		for _, args := range [][]string{
			{"dlq", "show", "--config", cfgPath},
			{"dlq", "show", "abc", "--config", cfgPath},
			{"dlq", "redrive", "--config", cfgPath},
			{"dlq", "redrive", "--config", cfgPath, "--seq", "1", "--all"},
		} {
			if code, _, _ := runTool(t, getenv, args...); code != exitUsage {
				t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
			}
		}
	})
}

type diffError struct{ diff string }

func (e *diffError) Error() string { return "(-got +want):\n" + e.diff }
