package handlers

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
)

// FuzzMap feeds arbitrary event JSON through the example and edge rules: Map
// must not panic, and must give either valid intents or a *RuleError.
// The seeds (the example events and testdata/cases) run on every go test.
func FuzzMap(f *testing.F) {
	for _, pattern := range []string{filepath.Join(exampleEventsDir, "*.json"), filepath.Join("testdata", "cases", "*.json")} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			b := readFile(f, file)
			var c mapCase
			if json.Unmarshal(b, &c) == nil && len(c.Event) > 0 {
				b = c.Event
			}
			f.Add(b)
		}
	}
	r := mustRules(f, testRules())
	f.Fuzz(func(t *testing.T, b []byte) {
		ev := readEventOrSkip(t, b)
		intents, err := r.Map(ev)
		_ = r.Keys(ev)
		if err != nil {
			var re *RuleError
			if !errors.As(err, &re) {
				t.Fatalf("Map error %v (%T) is not a *RuleError", err, err)
			}
			if re.Rule() == "" || re.Retryable() {
				t.Fatalf("RuleError %+v: want a rule name and not retryable", re)
			}
			if intents != nil {
				t.Fatalf("Map returned intents %v with error %v", intents, err)
			}
			return
		}
		for _, in := range intents {
			if in.Rule == "" || in.Module == "" || checkZohoID(in.RecordID) != nil {
				t.Fatalf("invalid intent %+v", in)
			}
			if _, err := json.Marshal(in); err != nil {
				t.Fatalf("intent %+v does not marshal: %v", in, err)
			}
			for _, g := range in.Recipients {
				if g.Email == "" && checkZohoID(g.Recipient.ID) != nil {
					t.Fatalf("intent %+v: recipient %+v has no valid ID", in, g)
				}
			}
		}
	})
}

// readEventOrSkip decodes a structured CloudEvent; input that is not one is
// rejected before the rules (by the consumer), so it is skipped here.
func readEventOrSkip(t *testing.T, b []byte) (ev cloudevents.Event) {
	t.Helper()
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Skip()
	}
	if err := ev.Validate(); err != nil {
		t.Skip()
	}
	return ev
}
