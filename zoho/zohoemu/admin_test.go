package zohoemu

import (
	"bytes"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDemoSeed_matchesDeployFile(t *testing.T) {
	want, err := os.ReadFile("../../deploy/examples/emulator-seed.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(demoSeed, want) {
		t.Error("demo-seed.json and deploy/examples/emulator-seed.json differ; keep them identical")
	}
	if _, err := ReadSeedFile("../../deploy/examples/emulator-seed.json"); err != nil {
		t.Fatal(err)
	}
}

func TestParseSeed_errors(t *testing.T) {
	tests := []struct {
		name, json string
	}{
		{"unknown key", `{"users":[{"id":"1","status":"active","emial":"x"}]}`},
		{"bad status", `{"users":[{"id":"1","status":"gone"}]}`},
		{"duplicate user", `{"users":[{"id":"1","status":"active"},{"id":"1","status":"active"}]}`},
		{"bad permission", `{"records":[{"module":"Deals","id":"1","shares":[{"type":"users","id":"2","permission":"all"}]}]}`},
		{"client without refresh token", `{"clients":[{"client_id":"c","client_secret":"s","user_id":"1"}]}`},
		{"not json", `users:`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseSeed(strings.NewReader(tt.json)); err == nil {
				t.Error("ParseSeed succeeded, want an error")
			}
		})
	}
	t.Run("dangling reference", func(t *testing.T) {
		f := newFixture(t, nil)
		err := f.emu.LoadSeed(&Seed{Records: []Record{{Module: "Deals", ID: "9", Owner: "404"}}})
		if err == nil {
			t.Error("LoadSeed accepted an unknown owner")
		}
	})
}

func TestSetSharesAndReset(t *testing.T) {
	f := newFixture(t, nil)
	want := []Entry{{Type: "groups", ID: emeaGroup, Permission: "read_only"}, {Type: "users", ID: sam, Permission: "full_access", ShareRelated: true}}
	if err := f.emu.SetShares("Deals", deal, want); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, f.emu.Shares("Deals", deal)); diff != "" {
		t.Errorf("Shares (-want +got):\n%s", diff)
	}
	for name, bad := range map[string][]Entry{
		"unknown user":  {{Type: "users", ID: "404", Permission: "read_only"}},
		"disabled user": {{Type: "users", ID: former, Permission: "read_only"}},
		"bad type":      {{Type: "teams", ID: "1", Permission: "read_only"}},
	} {
		if err := f.emu.SetShares("Deals", deal, bad); err == nil {
			t.Errorf("%s: SetShares succeeded, want an error", name)
		}
	}
	if err := f.emu.SetShares("Deals", "404", nil); err == nil {
		t.Error("SetShares on an unknown record succeeded")
	}
	f.emu.SetFaults(Faults{Rules: []Fault{{Code: "INTERNAL_ERROR", Count: 1}}})
	f.emu.Reset()
	if s := f.emu.Shares("Deals", deal); s != nil {
		t.Errorf("after Reset Shares = %v, want none", s)
	}
	if diff := cmp.Diff([]Entry{{Type: "users", ID: ken, Permission: "read_only"}}, f.emu.Shares("Deals", deal2)); diff != "" {
		t.Errorf("seeded shares after Reset (-want +got):\n%s", diff)
	}
	if got := f.emu.CurrentFaults(); len(got.Rules) != 0 {
		t.Errorf("faults after Reset = %+v, want none", got)
	}
}

func TestAdminAPI(t *testing.T) {
	f := newFixture(t, nil)
	admin := func(method, path, body string) response { return f.do(t, "", method, path, body) }

	got := admin("POST", "/_emu/seed", `{"records":[{"module":"Deals","id":"77","name":"New deal","owner":"`+integ+`"}]}`)
	checkStatus(t, got, 200)
	got = admin("POST", "/_emu/shares", `{"module":"Deals","record_id":"77","shares":[{"type":"users","id":"`+ken+`","permission":"read_write","share_related_records":false}]}`)
	checkStatus(t, got, 200)
	got = admin("GET", "/_emu/state", "")
	checkStatus(t, got, 200)
	var st State
	decodeJSON(t, got.body, &st)
	var rec *RecordState
	for i := range st.Records {
		if st.Records[i].ID == "77" {
			rec = &st.Records[i]
		}
	}
	if rec == nil {
		t.Fatalf("state has no record 77: %s", got.body)
	}
	if diff := cmp.Diff([]Entry{{Type: "users", ID: ken, Permission: "read_write"}}, rec.Shares); diff != "" {
		t.Errorf("record 77 shares (-want +got):\n%s", diff)
	}

	checkStatus(t, admin("POST", "/_emu/seed", `{"bogus":1}`), 400)
	checkStatus(t, admin("POST", "/_emu/shares", `{"module":"Deals","record_id":"404","shares":[]}`), 400)
	checkStatus(t, admin("POST", "/_emu/faults", `{"rules":[{"code":"INTERNAL_ERROR","rate":3}]}`), 400)

	got = admin("POST", "/_emu/faults", `{"seed":3,"latency":"1ms","rules":[{"code":"INTERNAL_ERROR","count":1,"methods":["GET"]}]}`)
	checkStatus(t, got, 200)
	tok := f.token(t)
	checkStatus(t, f.do(t, tok, "GET", sharePath("v8", "Deals", "77"), ""), 500)
	checkStatus(t, f.do(t, tok, "GET", sharePath("v8", "Deals", "77"), ""), 200)
	checkStatus(t, admin("POST", "/_emu/faults", ""), 200)
	if got := f.emu.CurrentFaults(); got.Seed != 0 || len(got.Rules) != 0 {
		t.Errorf("faults after clearing = %+v", got)
	}

	got = admin("GET", "/_emu/requests?recent=1", "")
	checkStatus(t, got, 200)
	var rs RequestStats
	decodeJSON(t, got.body, &rs)
	if rs.ByRoute["GET /crm/v8/{module}/{record_id}/actions/share 500"] != 1 || rs.ByRoute["POST /oauth/v2/token 200"] != 1 {
		t.Errorf("by_route = %v", rs.ByRoute)
	}
	if len(rs.Recent) != 1 || rs.Recent[0].Status != 200 || rs.Recent[0].Code != "SUCCESS" {
		t.Errorf("recent = %+v, want the last GET", rs.Recent)
	}
	checkStatus(t, admin("POST", "/_emu/requests/reset", ""), 200)
	if got := f.emu.Requests().Total; got != 0 {
		t.Errorf("Total after reset = %d", got)
	}

	checkStatus(t, admin("POST", "/_emu/expire-tokens", ""), 200)
	checkStatus(t, f.do(t, tok, "GET", sharePath("v8", "Deals", "77"), ""), 401)

	checkStatus(t, admin("POST", "/_emu/reset", ""), 200)
	if s := f.emu.Shares("Deals", "77"); s != nil {
		t.Errorf("shares set by hand survived reset: %v", s)
	}
	checkStatus(t, admin("GET", "/_emu/reset", ""), http.StatusMethodNotAllowed)
	checkStatus(t, admin("GET", "/_emu/nope", ""), http.StatusNotFound)
}

// TestRequests_recentRing: Recent keeps the last RecentRequests requests,
// oldest first, after the ring has wrapped more than once.
func TestRequests_recentRing(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.RecentRequests = 3 })
	tok := f.token(t)
	for _, id := range []string{"1", "2", "3", "4", "5", "6", "7"} {
		f.do(t, tok, http.MethodGet, "/crm/v8/Deals/"+id+"/actions/share", "")
	}
	var got []string
	for _, l := range f.emu.Requests().Recent {
		got = append(got, l.Path)
	}
	want := []string{"/crm/v8/Deals/5/actions/share", "/crm/v8/Deals/6/actions/share", "/crm/v8/Deals/7/actions/share"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("recent paths (-want +got):\n%s", diff)
	}
}
