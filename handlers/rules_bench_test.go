package handlers

import (
	"fmt"
	"path/filepath"
	"testing"
)

// BenchmarkMap maps the deal.assigned example against 50 rules of which 2
// match: 40 with other exact types (skipped by the index), 8 globs that do not
// match, and 2 deal.assigned rules with conditions and list recipients.
func BenchmarkMap(b *testing.B) {
	var rules []RuleConfig
	for i := range 40 {
		rules = append(rules, RuleConfig{
			Name: fmt.Sprintf("other-%d", i), Type: fmt.Sprintf("other.event%d", i), When: "data.amount > 0",
			Action: "grant", Module: "Deals", RecordID: "data.deal_id",
			Recipients: []RecipientConfig{{User: "data.assignee.zoho_user_id"}},
		})
	}
	for i := range 8 {
		rules = append(rules, RuleConfig{
			Name: fmt.Sprintf("glob-%d", i), Type: fmt.Sprintf("invoice%d.*", i),
			Action: "revoke_all", Module: "Deals", RecordID: "data.deal_id",
		})
	}
	rules = append(rules, exampleRules()[0], RuleConfig{
		Name: "watchers", Type: "deal.assigned", Subject: "Deals/*", When: `data.stage != "Closed"`,
		Action: "grant", Module: "Deals", RecordID: "data.deal_id",
		Recipients: []RecipientConfig{{User: `data.watchers.filter(w, !w.contains("@"))`, Permission: "read_only"}},
	})
	r := mustRules(b, rules)
	ev := readEvent(b, readFile(b, filepath.Join(exampleEventsDir, "deal.assigned.json")))
	if got, err := r.Map(ev); err != nil || len(got) != 2 {
		b.Fatalf("Map = %d intents, %v; want 2, nil", len(got), err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Map(ev); err != nil {
			b.Fatal(err)
		}
	}
}
