package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/crmshare/crmshare/consumer"
	"github.com/crmshare/crmshare/zoho/zohoemu"
)

// TestEventShow asks the real `event show` beside a running service about an
// event applied and then republished, one dead-lettered, and one that no
// message carries.
func TestEventShow(t *testing.T) {
	s := startE2E(t, e2eOptions{})
	cfgPath, getenv := s.toolConfig(t, e2eRules)

	applied := e2eEvent("ev-show-ok", "deal.assigned", map[string]any{"deal_id": e2eDeal, "user_id": e2eMaria})
	first := s.publish(t, applied)
	s.waitSettled(t, first.Sequence)
	// The same event again under another Nats-Msg-Id: stored, then skipped.
	msg, err := consumer.Encode(s.subject(applied.Type()), applied, consumer.ModeBinary)
	if err != nil {
		t.Fatal(err)
	}
	msg.Header.Set(jetstream.MsgIDHeader, "republished-ev-show-ok")
	second := s.publishMsg(t, msg)
	s.waitSettled(t, second.Sequence)

	s.emu.SetFaults(zohoemu.Faults{Rules: []zohoemu.Fault{{Code: "SHARE_LIMIT_EXCEEDED", Methods: []string{"POST"}, Count: 1}}})
	refused := e2eEvent("ev-show-refused", "deal.assigned", map[string]any{"deal_id": e2eDeal2, "user_id": e2eSam})
	third := s.publish(t, refused)
	s.waitSettled(t, third.Sequence)

	t.Run("applied and republished", func(t *testing.T) {
		code, out, errOut := runTool(t, getenv, "event", "show", "--config", cfgPath, "--id", "ev-show-ok", "--json")
		if code != exitOK {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
		var got eventShow
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out)
		}
		if got.Verdict != "applied" || len(got.Copies) != 2 || len(got.Applied) != 1 || len(got.DeadLetters) != 0 {
			t.Fatalf("verdict %q, %d copies, %d ledger entries, %d dead letters; want applied, 2, 1, 0\n%s",
				got.Verdict, len(got.Copies), len(got.Applied), len(got.DeadLetters), out)
		}
		if got.Copies[0].Sequence != first.Sequence || got.Copies[1].Sequence != second.Sequence ||
			got.Copies[1].MsgID != "republished-ev-show-ok" {
			t.Errorf("copies at %d and %d (msg id %q), want %d and %d (republished-ev-show-ok)",
				got.Copies[0].Sequence, got.Copies[1].Sequence, got.Copies[1].MsgID, first.Sequence, second.Sequence)
		}
		for _, c := range got.Copies {
			if c.Delivery != "settled" {
				t.Errorf("copy %d: delivery %q, want settled", c.Sequence, c.Delivery)
			}
			if len(c.Intents) != 1 || c.Intents[0].RecordID != e2eDeal || c.Intents[0].Rule != "grant-deal" {
				t.Errorf("copy %d: intents %+v, want one grant on Deals/%s by grant-deal", c.Sequence, c.Intents, e2eDeal)
			}
		}
		if a := got.Applied[0]; a.Sequence != first.Sequence || a.Source != "urn:e2e" || a.ID != "ev-show-ok" || a.AppliedAt.IsZero() {
			t.Errorf("ledger entry %+v, want the first copy (seq %d) from urn:e2e", a, first.Sequence)
		}
		if got.Scanned != third.Sequence {
			t.Errorf("scanned %d messages, want the whole stream (%d)", got.Scanned, third.Sequence)
		}
	})

	t.Run("dead-lettered", func(t *testing.T) {
		code, out, errOut := runTool(t, getenv, "event", "show", "--config", cfgPath, "--id", "ev-show-refused")
		if code != exitOK {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
		for _, want := range []string{
			"event ev-show-refused: dead-lettered",
			"intent: grant Deals/" + e2eDeal2 + " (rule grant-deal): users:" + e2eSam + " read_write",
			"ledger: not listed",
			"dead letter: seq 1 ",
			"(zoho SHARE_LIMIT_EXCEEDED)",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("another source", func(t *testing.T) {
		code, out, _ := runTool(t, getenv, "event", "show", "--config", cfgPath, "--id", "ev-show-ok", "--source", "urn:elsewhere", "--json")
		var got eventShow
		if code != exitOK || json.Unmarshal([]byte(out), &got) != nil {
			t.Fatalf("exit %d\n%s", code, out)
		}
		if got.Verdict != "not found in the stream" || len(got.Copies) != 0 || len(got.Applied) != 0 {
			t.Errorf("verdict %q with %d copies and %d ledger entries, want not found, 0, 0", got.Verdict, len(got.Copies), len(got.Applied))
		}
	})

	t.Run("usage", func(t *testing.T) {
		if code, _, errOut := runTool(t, getenv, "event", "show", "--config", cfgPath); code != exitUsage || !strings.Contains(errOut, "-id") {
			t.Errorf("without --id: exit %d, stderr %q; want usage naming -id", code, errOut)
		}
	})
}
