package zohoemu

import (
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestShare_wireShapes(t *testing.T) {
	tests := []struct {
		name       string
		version    string
		post       string
		wantStatus int
		wantGet    string
	}{
		{
			name: "v8", version: "v8", post: `{"share":[{"shared_with":{"type":"users","id":"` + maria + `"},"permission":"read_write","type":"private","share_related_records":true}],"notify_on_completion":false,"notify_shared_members":false}`,
			wantStatus: http.StatusCreated,
			wantGet: `{"share":[{"shared_with":{"name":"Maria Lopez","id":"` + maria + `","type":"users","zuid":"686281388"},"share_related_records":true,
				"shared_through":{"module":{"name":"Deals","id":"4150868000000002004"},"id":"` + deal + `","entity_name":"Acme renewal 2027"},
				"shared_time":"2026-03-01T09:30:00+00:00","permission":"read_write",
				"shared_by":{"name":"Integration User","id":"` + integ + `","zuid":"636679182"},"type":"private"}]}`,
		},
		{
			name: "v2.1", version: "v2.1", post: body(`{"user":{"id":"` + maria + `"},"permission":"read_write","share_related_records":true}`),
			wantStatus: http.StatusOK,
			wantGet: `{"share":[{"user":{"id":"` + maria + `","full_name":"Maria Lopez","zuid":"686281388"},"share_related_records":true,
				"shared_through":{"module":{"name":"Deals","id":"4150868000000002004"},"id":"` + deal + `","entity_name":"Acme renewal 2027"},
				"shared_time":"2026-03-01T09:30:00+00:00","permission":"read_write",
				"shared_by":{"id":"` + integ + `","full_name":"Integration User","zuid":"636679182"},"type":"private"}]}`,
		},
		{
			name: "v2 with a numeric id", version: "v2", post: body(`{"user":{"id":` + maria + `},"permission":"read_write","share_related_records":true}`),
			wantStatus: http.StatusOK,
			wantGet: `{"share":[{"user":{"id":"` + maria + `","full_name":"Maria Lopez","zuid":"686281388"},"share_related_records":true,
				"shared_through":{"module":{"name":"Deals","id":"4150868000000002004"},"id":"` + deal + `","entity_name":"Acme renewal 2027"},
				"shared_time":"2026-03-01T09:30:00+00:00","permission":"read_write",
				"shared_by":{"id":"` + integ + `","full_name":"Integration User","zuid":"636679182"},"type":"private"}]}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			tok := f.token(t)
			path := sharePath(tt.version, "Deals", deal)

			got := f.do(t, tok, http.MethodGet, path, "")
			checkStatus(t, got, http.StatusNoContent)
			if len(got.body) != 0 {
				t.Errorf("204 body = %q, want empty", got.body)
			}

			got = f.do(t, tok, http.MethodPost, path, tt.post)
			checkStatus(t, got, tt.wantStatus)
			checkJSON(t, got.body, `{"share":[`+okEntry+`]}`)
			if ct := got.header.Get("Content-Type"); ct != "application/json;charset=UTF-8" {
				t.Errorf("Content-Type = %q, want application/json;charset=UTF-8", ct)
			}

			got = f.do(t, tok, http.MethodGet, path+"?sharedTo="+maria+"&view=summary&", "")
			checkStatus(t, got, http.StatusOK)
			checkJSON(t, got.body, tt.wantGet)

			got = f.do(t, tok, http.MethodGet, path+"?sharedTo="+ken, "")
			checkStatus(t, got, http.StatusNoContent)

			got = f.do(t, tok, http.MethodDelete, path, "")
			checkStatus(t, got, http.StatusOK)
			checkJSON(t, got.body, `{"share":{"code":"SUCCESS","details":{"id":"`+deal+`"},"message":"Sharing Revoked","status":"success"}}`)
			if s := f.emu.Shares("Deals", deal); s != nil {
				t.Errorf("after DELETE Shares = %v, want none", s)
			}
		})
	}
}

func TestShare_errors(t *testing.T) {
	dealV2, dealV21, dealV8 := sharePath("v2", "Deals", deal), sharePath("v2.1", "Deals", deal), sharePath("v8", "Deals", deal)
	tests := []struct {
		name       string
		method     string
		path       string
		body       string
		wantStatus int
		want       string
	}{
		{"unknown record", "GET", sharePath("v8", "Deals", "999"), "", 400,
			`{"code":"INVALID_DATA","details":{"resource_path_index":1},"message":"ENTITY_ID_INVALID","status":"error"}`},
		{"record in another module", "POST", sharePath("v2", "Accounts", deal), body(v2Share(ken, "read_only")), 400,
			`{"code":"INVALID_DATA","details":{"resource_path_index":1},"message":"ENTITY_ID_INVALID","status":"error"}`},
		{"unknown module", "GET", sharePath("v2", "Widgets", deal), "", 400,
			`{"code":"INVALID_MODULE","details":{"resource_path_index":0},"message":"The module name given seems to be invalid","status":"error"}`},
		{"tasks", "POST", sharePath("v8", "Tasks", deal), body(v8Share(ken, "read_only")), 401,
			`{"code":"OAUTH_SCOPE_MISMATCH","details":{},"message":"invalid oauth scope to access this URL","status":"error"}`},
		{"module without scope", "GET", sharePath("v8", "Leads", "1"), "", 401,
			`{"code":"OAUTH_SCOPE_MISMATCH","details":{},"message":"invalid oauth scope to access this URL","status":"error"}`},
		{"wrong method", "PATCH", dealV8, body(v8Share(ken, "read_only")), 400,
			`{"code":"INVALID_REQUEST_METHOD","details":{},"message":"The http request method type is not a valid one","status":"error"}`},
		{"bad path", "GET", "/crm/v8/Deals/" + deal + "/share", "", 404,
			`{"code":"INVALID_URL_PATTERN","details":{},"message":"Please check if the URL trying to access is a correct one.","status":"error"}`},
		{"unsupported version", "GET", sharePath("v5", "Deals", deal), "", 404,
			`{"code":"INVALID_URL_PATTERN","details":{},"message":"Please check if the URL trying to access is a correct one.","status":"error"}`},
		{"malformed json", "POST", dealV8, `{"share":[`, 400,
			`{"code":"INVALID_DATA","details":{},"message":"body","status":"error"}`},
		{"empty body", "PUT", dealV2, "", 400,
			`{"code":"INVALID_DATA","details":{},"message":"body","status":"error"}`},
		{"no share key", "POST", dealV21, `{}`, 400,
			`{"code":"MANDATORY_NOT_FOUND","details":{"api_name":"share","json_path":"$.share"},"message":"Mandatory fields missing","status":"error"}`},
		{"share not an array", "POST", dealV8, `{"share":{}}`, 400,
			`{"code":"INVALID_DATA","details":{"api_name":"share","expected_data_type":"jsonarray","json_path":"$.share"},"message":"invalid data","status":"error"}`},
		{"empty share array", "PUT", dealV8, `{"share":[]}`, 400,
			`{"code":"INVALID_DATA","details":{"api_name":"share","json_path":"$.share","minimum_length":1},"message":"invalid data","status":"error"}`},
		{"v8 too many entries", "POST", dealV8, body(v8Share("1", "read_only"), v8Share("2", "read_only"), v8Share("3", "read_only"), v8Share("4", "read_only"),
			v8Share("5", "read_only"), v8Share("6", "read_only"), v8Share("7", "read_only"), v8Share("8", "read_only"), v8Share("9", "read_only"), v8Share("10", "read_only"),
			v8Share("11", "read_only"), v8Share("12", "read_only"), v8Share("13", "read_only"), v8Share("14", "read_only"), v8Share("15", "read_only"), v8Share("16", "read_only"),
			v8Share("17", "read_only"), v8Share("18", "read_only"), v8Share("19", "read_only"), v8Share("20", "read_only"), v8Share("21", "read_only")), 400,
			`{"code":"INVALID_DATA","details":{"api_name":"share","json_path":"$.share","maximum_length":20},"message":"invalid data","status":"error"}`},
		{"v8 bad notify flag", "POST", dealV8, `{"share":[` + v8Share(ken, "read_only") + `],"notify_on_completion":"no"}`, 400,
			`{"code":"INVALID_DATA","details":{"api_name":"notify_on_completion","expected_data_type":"boolean","json_path":"$.notify_on_completion"},"message":"invalid data","status":"error"}`},
		{"v2 bad permission is 200", "POST", dealV2, body(v2Share(ken, "owner")), 200,
			`{"share":[{"code":"INVALID_DATA","details":{"api_name":"permission","json_path":"$.share[0].permission"},"message":"Permission is invalid","status":"error"}]}`},
		{"v2.1 bad permission", "POST", dealV21, body(v2Share(ken, "owner")), 400,
			`{"share":[{"code":"INVALID_DATA","details":{"api_name":"permission","json_path":"$.share[0].permission"},"message":"Permission is invalid","status":"error"}]}`},
		{"v8 bad permission", "POST", dealV8, body(v8Share(ken, "owner")), 400,
			`{"share":[{"code":"INVALID_DATA","details":{"api_name":"permission","json_path":"$.share[0].permission","regex":"read_only|read_write|full_access"},"message":"invalid data","status":"error"}]}`},
		{"v2 missing permission", "POST", dealV2, body(`{"user":{"id":"` + ken + `"}}`), 400,
			`{"share":[{"code":"MANDATORY_NOT_FOUND","details":{"api_name":"permission","json_path":"$.share[0].permission"},"message":"Mandatory fields missing","status":"error"}]}`},
		{"v2 given the v8 recipient key", "POST", dealV2, body(v8Share(ken, "read_only")), 400,
			`{"share":[{"code":"MANDATORY_NOT_FOUND","details":{"api_name":"user","json_path":"$.share[0].user"},"message":"Mandatory fields missing","status":"error"}]}`},
		{"v8 given the v2 recipient key", "POST", dealV8, body(`{"user":{"id":"` + ken + `"},"permission":"read_only","type":"private"}`), 400,
			`{"share":[{"code":"MANDATORY_NOT_FOUND","details":{"api_name":"shared_with","json_path":"$.share[0].shared_with"},"message":"required field not found","status":"error"}]}`},
		{"v8 missing type", "POST", dealV8, body(`{"shared_with":{"type":"users","id":"` + ken + `"},"permission":"read_only"}`), 400,
			`{"share":[{"code":"MANDATORY_NOT_FOUND","details":{"api_name":"type","json_path":"$.share[0].type"},"message":"required field not found","status":"error"}]}`},
		{"v8 bad recipient type", "POST", dealV8, body(`{"shared_with":{"type":"teams","id":"` + ken + `"},"permission":"read_only","type":"private"}`), 400,
			`{"share":[{"code":"INVALID_DATA","details":{"api_name":"type","json_path":"$.share[0].shared_with.type","regex":"users|groups|roles"},"message":"invalid data","status":"error"}]}`},
		{"v8 public mixed with private", "POST", dealV8, body(`{"type":"public","permission":"read_only","share_related_records":false}`, v8Share(ken, "read_only")), 400,
			`{"code":"AMBIGUITY_DURING_PROCESSING","details":{"ambiguity_due_to":[{"api_name":"type","json_path":"$.share[0].type"}]},"message":"For public sharing, more than one json object is given","status":"error"}`},
		{"unknown user", "POST", dealV8, body(v8Share("123", "read_only")), 400,
			`{"share":[{"code":"INVALID_DATA","details":{"api_name":"id","json_path":"$.share[0].shared_with.id"},"message":"invalid user Id","status":"error"}]}`},
		{"disabled user", "POST", dealV2, body(v2Share(former, "read_only")), 400,
			`{"share":[{"code":"INVALID_DATA","details":{"api_name":"id","json_path":"$.share[0].user.id"},"message":"cannot share to the user","status":"error"}]}`},
		{"unconfirmed user", "POST", dealV21, body(v2Share(newHire, "read_only")), 400,
			`{"share":[{"code":"INVALID_DATA","details":{"api_name":"id","json_path":"$.share[0].user.id"},"message":"cannot share to the user","status":"error"}]}`},
		{"unknown group", "POST", dealV8, body(`{"shared_with":{"type":"groups","id":"77"},"permission":"read_only","type":"private"}`), 400,
			`{"share":[{"code":"INVALID_DATA","details":{"api_name":"id","json_path":"$.share[0].shared_with.id"},"message":"invalid group Id","status":"error"}]}`},
		{"unknown role", "POST", dealV8, body(`{"shared_with":{"type":"roles","id":"77"},"permission":"read_only","type":"private"}`), 400,
			`{"share":[{"code":"INVALID_DATA","details":{"api_name":"id","json_path":"$.share[0].shared_with.id"},"message":"invalid role Id","status":"error"}]}`},
		{"owner already sees it", "POST", dealV8, body(v8Share(integ, "read_only")), 400,
			`{"share":[{"code":"INVALID_DATA","details":{"api_name":"id","json_path":"$.share[0].shared_with.id"},"message":"record is already visible to the user.","status":"error"}]}`},
		{"already shared directly", "POST", sharePath("v2", "Deals", deal2), body(v2Share(ken, "full_access")), 400,
			`{"share":[{"code":"INVALID_DATA","details":{"api_name":"id","json_path":"$.share[0].user.id"},"message":"record is already visible to the user.","status":"error"}]}`},
		{"visible by other means", "POST", sharePath("v8", "Deals", deal2), body(v8Share(li, "read_only")), 400,
			`{"share":[{"code":"INVALID_DATA","details":{"api_name":"id","json_path":"$.share[0].shared_with.id"},"message":"record is already visible to the user.","status":"error"}]}`},
		{"v8 mixed is 207", "POST", dealV8, body(v8Share(ken, "read_only"), v8Share("123", "read_only")), 207,
			`{"share":[` + okEntry + `,{"code":"INVALID_DATA","details":{"api_name":"id","json_path":"$.share[1].shared_with.id"},"message":"invalid user Id","status":"error"}]}`},
		{"v2 mixed is 200", "POST", dealV2, body(v2Share("123", "read_only"), v2Share(ken, "read_only")), 200,
			`{"share":[{"code":"INVALID_DATA","details":{"api_name":"id","json_path":"$.share[0].user.id"},"message":"invalid user Id","status":"error"},` + okEntry + `]}`},
		{"v2 duplicate recipient", "POST", dealV2, body(v2Share(ken, "read_only"), v2Share(ken, "read_write")), 200,
			`{"share":[` + okEntry + `,{"code":"INVALID_DATA","details":{"api_name":"id","json_path":"$.share[1].user.id"},"message":"record is already visible to the user.","status":"error"}]}`},
		{"v2 nothing to revoke", "DELETE", dealV2, "", 400,
			`{"code":"BAD_REQUEST","details":{},"message":"No sharing through this record is available to revoke.","status":"error"}`},
		{"v2.1 nothing to revoke", "DELETE", dealV21, "", 400,
			`{"code":"BAD_REQUEST","details":{},"message":"No sharing through this record is available to revoke.","status":"error"}`},
		{"v8 nothing to revoke", "DELETE", dealV8, "", 400,
			`{"code":"CANNOT_PROCESS","details":{},"message":"No sharing through this record is available to revoke","status":"error"}`},
		{"v8 bad view", "GET", dealV8 + "?view=manage", "", 400,
			`{"code":"PATTERN_NOT_MATCHED","details":{"api_name":"view"},"message":"Please check whether the input values are correct","status":"error"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			got := f.do(t, f.token(t), tt.method, tt.path, tt.body)
			checkStatus(t, got, tt.wantStatus)
			checkJSON(t, got.body, tt.want)
		})
	}
}

func TestShare_limits(t *testing.T) {
	// twelve active confirmed users besides the owner
	seed := &Seed{}
	var ids []string
	for i := range 12 {
		id := "99000000000000" + string(rune('a'+i))
		ids = append(ids, id)
		seed.Users = append(seed.Users, User{ID: id, FullName: "U " + id, Status: "active", Confirm: true})
	}
	for i := range 6 {
		seed.Groups = append(seed.Groups, Group{ID: "g" + string(rune('0'+i)), Name: "G"})
	}
	t.Run("v2 refuses the whole request past 10 users", func(t *testing.T) {
		for _, v := range []struct{ version, msg string }{
			{"v2", "The record sharing limit has been reached"}, {"v2.1", "The record sharing has reached its limit"},
		} {
			f := newFixture(t, nil)
			if err := f.emu.LoadSeed(seed); err != nil {
				t.Fatal(err)
			}
			tok := f.token(t)
			var entries []string
			for _, id := range ids[:11] {
				entries = append(entries, v2Share(id, "read_only"))
			}
			got := f.do(t, tok, http.MethodPost, sharePath(v.version, "Deals", deal), body(entries...))
			checkStatus(t, got, http.StatusForbidden)
			checkJSON(t, got.body, `{"code":"SHARE_LIMIT_EXCEEDED","details":{},"message":"`+v.msg+`","status":"error"}`)
			if s := f.emu.Shares("Deals", deal); s != nil {
				t.Errorf("%s: shares after refused request = %v, want none", v.version, s)
			}
			got = f.do(t, tok, http.MethodPost, sharePath(v.version, "Deals", deal), body(entries[:10]...))
			checkStatus(t, got, http.StatusOK)
			if got, want := f.emu.MaxUsersEverShared(), 10; got != want {
				t.Errorf("MaxUsersEverShared = %d, want %d", got, want)
			}
		}
	})
	t.Run("v8 refuses each entry past a cap", func(t *testing.T) {
		f := newFixture(t, nil)
		if err := f.emu.LoadSeed(seed); err != nil {
			t.Fatal(err)
		}
		tok := f.token(t)
		var entries []string
		for _, id := range ids[:11] {
			entries = append(entries, v8Share(id, "read_only"))
		}
		for i := range 6 {
			entries = append(entries, `{"shared_with":{"type":"groups","id":"g`+string(rune('0'+i))+`"},"permission":"read_only","type":"private"}`)
		}
		got := f.do(t, tok, http.MethodPost, sharePath("v8", "Deals", deal), body(entries...))
		checkStatus(t, got, http.StatusMultiStatus)
		want := `{"share":[`
		for range 10 {
			want += okEntry + ","
		}
		want += `{"code":"LIMIT_EXCEEDED","details":{"api_name":"type","json_path":"$.share[10].shared_with.type","limit":10},"message":"Cannot share a record to more than 10 users","status":"error"},`
		for range 5 {
			want += okEntry + ","
		}
		want += `{"code":"LIMIT_EXCEEDED","details":{"api_name":"type","json_path":"$.share[16].shared_with.type","limit":5},"message":"Cannot share a record to more than 5 groups","status":"error"}]}`
		checkJSON(t, got.body, want)
		if got := len(f.emu.Shares("Deals", deal)); got != 15 {
			t.Errorf("direct shares = %d, want 15", got)
		}
	})
}

func TestShare_putReplacesTheList(t *testing.T) {
	for _, version := range []string{"v2", "v2.1", "v8"} {
		t.Run(version, func(t *testing.T) {
			f := newFixture(t, nil)
			tok := f.token(t)
			path := sharePath(version, "Deals", deal)
			mk := v2Share
			if version == "v8" {
				mk = v8Share
			}
			got := f.do(t, tok, http.MethodPost, path, body(mk(ken, "read_only"), mk(sam, "read_only")))
			if got.status >= 300 {
				t.Fatalf("POST: %d %s", got.status, got.body)
			}
			got = f.do(t, tok, http.MethodPut, path, body(mk(sam, "full_access"), mk(maria, "read_write")))
			if got.status >= 300 {
				t.Fatalf("PUT: %d %s", got.status, got.body)
			}
			checkJSON(t, got.body, `{"share":[`+okEntry+`,`+okEntry+`]}`)
			want := []Entry{
				{Type: "users", ID: sam, Permission: "full_access"},
				{Type: "users", ID: maria, Permission: "read_write"},
			}
			if diff := cmp.Diff(want, f.emu.Shares("Deals", deal)); diff != "" {
				t.Errorf("shares after PUT (-want +got):\n%s", diff)
			}
			// A refused entry keeps what its recipient had; the others are replaced.
			got = f.do(t, tok, http.MethodPut, path, body(mk(sam, "bogus"), mk(li, "read_only")))
			if got.status >= 400 && version == "v8" {
				t.Fatalf("PUT mixed: %d %s", got.status, got.body)
			}
			want = []Entry{
				{Type: "users", ID: sam, Permission: "full_access"},
				{Type: "users", ID: li, Permission: "read_only"},
			}
			if diff := cmp.Diff(want, f.emu.Shares("Deals", deal)); diff != "" {
				t.Errorf("shares after mixed PUT (-want +got):\n%s", diff)
			}
		})
	}
}

func TestShare_inheritedFromParent(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.token(t)
	got := f.do(t, tok, http.MethodPost, sharePath("v8", "Accounts", account),
		body(`{"shared_with":{"type":"users","id":"`+ken+`"},"permission":"read_only","type":"private","share_related_records":true}`))
	checkStatus(t, got, http.StatusCreated)

	got = f.do(t, tok, http.MethodGet, sharePath("v8", "Contacts", contact), "")
	checkStatus(t, got, http.StatusOK)
	checkJSON(t, got.body, `{"share":[{"shared_with":{"name":"Ken Ito","id":"`+ken+`","type":"users","zuid":"624051688"},"share_related_records":true,
		"shared_through":{"module":{"name":"Accounts","id":"4150868000000002957"},"id":"`+account+`","entity_name":"Acme Corp"},
		"shared_time":"2026-03-01T09:30:00+00:00","permission":"read_only",
		"shared_by":{"name":"Integration User","id":"`+integ+`","zuid":"636679182"},"type":"private"}]}`)

	// Inherited access is not the child's to revoke or replace.
	got = f.do(t, tok, http.MethodDelete, sharePath("v8", "Contacts", contact), "")
	checkStatus(t, got, http.StatusBadRequest)
	got = f.do(t, tok, http.MethodPost, sharePath("v2", "Contacts", contact), body(v2Share(ken, "full_access")))
	checkJSON(t, got.body, `{"share":[{"code":"INVALID_DATA","details":{"api_name":"id","json_path":"$.share[0].user.id"},"message":"record is already visible to the user.","status":"error"}]}`)
	got = f.do(t, tok, http.MethodPut, sharePath("v8", "Contacts", contact), body(v8Share(sam, "read_only")))
	checkStatus(t, got, http.StatusCreated)
	got = f.do(t, tok, http.MethodGet, sharePath("v8", "Contacts", contact)+"?sharedTo="+ken, "")
	checkStatus(t, got, http.StatusOK)
	if diff := cmp.Diff([]Entry{{Type: "users", ID: sam, Permission: "read_only"}}, f.emu.Shares("Contacts", contact)); diff != "" {
		t.Errorf("contact's direct shares (-want +got):\n%s", diff)
	}
}

func TestShare_v8GroupsRolesAndPublic(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.token(t)
	path := sharePath("v8", "Deals", deal)
	got := f.do(t, tok, http.MethodPost, path, body(
		`{"shared_with":{"type":"groups","id":"`+emeaGroup+`"},"permission":"read_only","type":"private"}`,
		`{"shared_with":{"type":"roles","id":"`+salesRole+`"},"permission":"full_access","type":"private","share_related_records":true}`))
	checkStatus(t, got, http.StatusCreated)
	want := []Entry{
		{Type: "groups", ID: emeaGroup, Permission: "read_only"},
		{Type: "roles", ID: salesRole, Permission: "full_access", ShareRelated: true},
	}
	if diff := cmp.Diff(want, f.emu.Shares("Deals", deal)); diff != "" {
		t.Errorf("shares (-want +got):\n%s", diff)
	}
	// v2 has no shape for groups and roles: it lists nothing.
	checkStatus(t, f.do(t, tok, http.MethodGet, sharePath("v2", "Deals", deal), ""), http.StatusNoContent)

	got = f.do(t, tok, http.MethodPut, path, body(`{"type":"public","permission":"read_only","share_related_records":false}`))
	checkStatus(t, got, http.StatusCreated)
	if diff := cmp.Diff([]Entry{{Type: "public", Permission: "read_only"}}, f.emu.Shares("Deals", deal)); diff != "" {
		t.Errorf("shares after public PUT (-want +got):\n%s", diff)
	}
	got = f.do(t, tok, http.MethodPost, path, body(v8Share(ken, "read_only")))
	checkStatus(t, got, http.StatusBadRequest)
}

func TestShare_requestForms(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.token(t)
	// No Content-Type header: net/http sets none for a bare reader.
	got := f.do(t, tok, http.MethodPost, sharePath("v8", "deals", deal)+"?", body(v8Share(ken, "read_only")))
	checkStatus(t, got, http.StatusCreated)
	got = f.do(t, tok, http.MethodGet, sharePath("v2.1", "Deals", deal)+"?view=manage&", "")
	checkStatus(t, got, http.StatusOK)
	var v struct {
		Shareable []struct {
			ID string `json:"id"`
		} `json:"shareable_user"`
	}
	decodeJSON(t, got.body, &v)
	var ids []string
	for _, u := range v.Shareable {
		ids = append(ids, u.ID)
	}
	if diff := cmp.Diff([]string{maria, sam, li}, ids); diff != "" {
		t.Errorf("shareable_user (-want +got):\n%s", diff)
	}
}
