package telemetry

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// dashboardMetrics are the Prometheus series the service's packages emit, by
// type, as the dashboard may query them.
var dashboardMetrics = map[string]string{
	"crmshare_events_total":                  "counter",
	"crmshare_event_duration_seconds":        "histogram",
	"crmshare_inflight":                      "gauge",
	"crmshare_consumer_pending":              "gauge",
	"crmshare_redeliveries_total":            "counter",
	"crmshare_dead_letters_total":            "counter",
	"crmshare_ledger_hits_total":             "counter",
	"crmshare_intents_total":                 "counter",
	"crmshare_share_calls_total":             "counter",
	"crmshare_zoho_requests_total":           "counter",
	"crmshare_zoho_request_duration_seconds": "histogram",
	"crmshare_zoho_token_refreshes_total":    "counter",
}

// selectorName finds metric names in PromQL: an identifier right before a
// label matcher, or the first argument of label_values.
var selectorName = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\{|label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)`)

type dashboard struct {
	Title      string
	UID        string
	Panels     []dashboardPanel
	Templating struct {
		List []struct {
			Name  string
			Type  string
			Query any
		}
	}
}

type dashboardPanel struct {
	ID         int
	Type       string
	Title      string
	Datasource *struct{ Type, UID string }
	Targets    []struct{ Expr string }
}

func TestDashboard(t *testing.T) {
	b, err := os.ReadFile("../deploy/grafana/crmshare-dashboard.json")
	if err != nil {
		t.Fatalf("read dashboard: %v", err)
	}
	var d dashboard
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("dashboard is not valid JSON: %v", err)
	}
	if d.Title == "" || d.UID == "" {
		t.Errorf("dashboard title %q and uid %q must be set", d.Title, d.UID)
	}

	vars := map[string]string{}
	var exprs []string
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
		if q, ok := v.Query.(map[string]any); ok {
			if s, ok := q["query"].(string); ok {
				exprs = append(exprs, s)
			}
		}
	}
	if vars["datasource"] != "datasource" {
		t.Errorf("no datasource variable: templating has %v", vars)
	}

	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d is used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q does not use the datasource variable: %+v", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no queries", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}

	used := map[string]bool{}
	for _, e := range exprs {
		matches := selectorName.FindAllStringSubmatch(e, -1)
		if len(matches) == 0 {
			t.Errorf("query selects no metric: %s", e)
		}
		for _, m := range matches {
			name := m[1] + m[2]
			base := name
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if b, ok := strings.CutSuffix(name, suffix); ok && dashboardMetrics[b] == "histogram" {
					base = b
				}
			}
			if _, ok := dashboardMetrics[base]; !ok {
				t.Errorf("query uses %q, which no package emits: %s", name, e)
				continue
			}
			if dashboardMetrics[base] == "histogram" && base == name {
				t.Errorf("query uses histogram %q without _bucket, _sum or _count: %s", name, e)
			}
			used[base] = true
		}
	}
	var unused []string
	for name := range dashboardMetrics {
		if !used[name] {
			unused = append(unused, name)
		}
	}
	slices.Sort(unused)
	if diff := cmp.Diff(unused, []string(nil)); diff != "" {
		t.Errorf("metrics with no panel (-got +want):\n%s", diff)
	}
}
