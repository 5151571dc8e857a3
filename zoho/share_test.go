package zoho

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The bodies below are the contract's documented replies (zoho-share-api.md §2, §3).

func TestShareDecodesDocumentedReplies(t *testing.T) {
	two := []Share{
		{Recipient: Recipient{Type: RecipientUser, ID: "4150868000001174048"}, Permission: PermissionFullAccess, ShareRelated: true},
		{Recipient: Recipient{Type: RecipientUser, ID: "4150868000001199001"}, Permission: PermissionReadOnly},
	}
	one := two[:1]
	success := Result{Code: "SUCCESS", Message: "record will be shared successfully"}
	tests := []struct {
		name    string
		status  int
		body    string
		header  []string
		shares  []Share
		want    []Result
		wantErr *Error
	}{
		{
			name:   "v2 200 all success",
			status: 200,
			body: `{"share":[{"code":"SUCCESS","details":{},"message":"record will be shared successfully","status":"success"},
				{"code":"SUCCESS","details":{},"message":"record will be shared successfully","status":"success"}]}`,
			shares: two,
			want:   []Result{success, success},
		},
		{
			name:   "v8 201 all success",
			status: 201,
			body:   `{"share":[{"code":"SUCCESS","details":{},"message":"record will be shared successfully","status":"success"}]}`,
			shares: one,
			want:   []Result{success},
		},
		{
			name:   "202 tolerated, unknown keys ignored",
			status: 202,
			body:   `{"share":[{"code":"SUCCESS","details":{},"message":"record will be shared successfully","status":"success","extra":[1,2]}],"notify":false}`,
			shares: one,
			want:   []Result{success},
		},
		{
			name:   "v8 207 mixed",
			status: 207,
			body: `{"share":[{"code":"SUCCESS","details":{},"message":"record will be shared successfully","status":"success"},
				{"code":"INVALID_DATA","details":{"api_name":"shared_with","json_path":"$.share[1].shared_with"},"message":"invalid data","status":"error"}]}`,
			shares: two,
			want: []Result{success, {Code: "INVALID_DATA", Message: "invalid data", Err: &Error{
				Status: 207, Code: "INVALID_DATA", Message: "invalid data",
				Details: map[string]any{"api_name": "shared_with", "json_path": "$.share[1].shared_with"},
			}}},
		},
		{
			name:   "v8 400 with per-entry array",
			status: 400,
			body:   `{"share":[{"code":"INVALID_DATA","details":{"api_name":"permission","json_path":"$.share[0].permission","regex":"read_only|read_write|full_access"},"message":"invalid data","status":"error"}]}`,
			shares: one,
			want: []Result{{Code: "INVALID_DATA", Message: "invalid data", Err: &Error{
				Status: 400, Code: "INVALID_DATA", Message: "invalid data",
				Details: map[string]any{"api_name": "permission", "json_path": "$.share[0].permission", "regex": "read_only|read_write|full_access"},
			}}},
		},
		{
			name:    "bare error object",
			status:  400,
			body:    `{"code":"INVALID_DATA","details":{"resource_path_index":1},"message":"ENTITY_ID_INVALID","status":"error"}`,
			shares:  one,
			wantErr: &Error{Status: 400, Code: "INVALID_DATA", Message: "ENTITY_ID_INVALID", Details: map[string]any{"resource_path_index": float64(1)}},
		},
		{
			name:    "bare error in a 200",
			status:  200,
			body:    `{"code":"INVALID_DATA","details":{},"message":"Permission is invalid","status":"error"}`,
			shares:  one,
			wantErr: &Error{Status: 200, Code: "INVALID_DATA", Message: "Permission is invalid", Details: map[string]any{}},
		},
		{
			name:    "429 with Retry-After",
			status:  429,
			body:    `{"code":"TOO_MANY_REQUESTS","details":{},"message":"too many requests","status":"error"}`,
			header:  []string{"Retry-After", "7"},
			shares:  one,
			wantErr: &Error{Status: 429, Code: "TOO_MANY_REQUESTS", Message: "too many requests", Details: map[string]any{}, RetryAfter: 7 * time.Second},
		},
		{
			name:    "429 without a body",
			status:  429,
			body:    ``,
			shares:  one,
			wantErr: &Error{Status: 429, Code: "TOO_MANY_REQUESTS", Message: "too many requests"},
		},
		{
			name:    "502 HTML page",
			status:  502,
			body:    `<html><body>Bad Gateway</body></html>`,
			header:  []string{"Content-Type", "text/html"},
			shares:  one,
			wantErr: &Error{Status: 502, Message: "bad gateway (reply was not JSON)"},
		},
		{
			name:    "success without per-entry results",
			status:  200,
			body:    `{}`,
			shares:  one,
			wantErr: &Error{Status: 200, Message: "reply has no per-entry results"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newScripted(t, reply(tt.status, tt.body, tt.header...))
			c := mustClient(t, s.URL, Config{})
			got, err := c.Share(t.Context(), "Deals", "4150868000002515001", tt.shares)
			if tt.wantErr != nil {
				var ze *Error
				if !errors.As(err, &ze) {
					t.Fatalf("Share error = %v, want *Error", err)
				}
				if diff := cmp.Diff(ze, tt.wantErr); diff != "" {
					t.Errorf("Share error (-got +want):\n%s", diff)
				}
				if got != nil {
					t.Errorf("Share results = %v, want nil with an error", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Share: %v", err)
			}
			if diff := cmp.Diff(got, tt.want); diff != "" {
				t.Errorf("Share results (-got +want):\n%s", diff)
			}
		})
	}
}

func TestShareUnusableRepliesAreRetryable(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
	}{
		{"non-JSON 200", 200, `OK`},
		{"truncated JSON 201", 201, `{"share":[{"code":"SUCC`},
		{"result count differs from entry count", 201, `{"share":[{"code":"SUCCESS","status":"success"},{"code":"SUCCESS","status":"success"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newScripted(t, reply(tt.status, tt.body, "Content-Type", "application/json"))
			c := mustClient(t, s.URL, Config{})
			_, err := c.Share(t.Context(), "Deals", "1", []Share{{Recipient: Recipient{Type: RecipientUser, ID: "2"}, Permission: PermissionReadOnly}})
			var ze *Error
			if !errors.As(err, &ze) {
				t.Fatalf("Share error = %v, want *Error", err)
			}
			if ze.Status != 0 || !ze.Retryable() {
				t.Errorf("Share error status %d retryable %v, want 0 and true (outcome unknown)", ze.Status, ze.Retryable())
			}
		})
	}
}

func TestShareRequestBodies(t *testing.T) {
	shares := []Share{
		{Recipient: Recipient{Type: RecipientUser, ID: "4150868000001174048"}, Permission: PermissionFullAccess, ShareRelated: true},
		{Recipient: Recipient{Type: RecipientUser, ID: "4150868000001199001"}, Permission: PermissionReadOnly},
	}
	v8 := append(shares[:2:2], Share{Recipient: Recipient{Type: RecipientGroup, ID: "4150868000002000101"}, Permission: PermissionReadWrite})
	v2Body := `{"share":[{"user":{"id":"4150868000001174048"},"share_related_records":true,"permission":"full_access"},
		{"user":{"id":"4150868000001199001"},"share_related_records":false,"permission":"read_only"}]}`
	v8Body := func(notify bool) string {
		n := "false"
		if notify {
			n = "true"
		}
		return `{"share":[
			{"shared_with":{"type":"users","id":"4150868000001174048"},"share_related_records":true,"permission":"full_access","type":"private"},
			{"shared_with":{"type":"users","id":"4150868000001199001"},"share_related_records":false,"permission":"read_only","type":"private"},
			{"shared_with":{"type":"groups","id":"4150868000002000101"},"share_related_records":false,"permission":"read_write","type":"private"}],
			"notify_on_completion":` + n + `,"notify_shared_members":` + n + `}`
	}
	tests := []struct {
		name     string
		version  string
		notify   bool
		shares   []Share
		wantPath string
		wantBody string
	}{
		{"v2", "v2", false, shares, "/crm/v2/Deals/4150868000002515001/actions/share", v2Body},
		{"v2.1 ignores notify", "v2.1", true, shares, "/crm/v2.1/Deals/4150868000002515001/actions/share", v2Body},
		{"v8", "v8", false, v8, "/crm/v8/Deals/4150868000002515001/actions/share", v8Body(false)},
		{"v8 notify", "v8", true, v8, "/crm/v8/Deals/4150868000002515001/actions/share", v8Body(true)},
	}
	for _, tt := range tests {
		for _, method := range []string{http.MethodPost, http.MethodPut} {
			t.Run(tt.name+" "+method, func(t *testing.T) {
				ok := `{"share":[` + repeat(`{"code":"SUCCESS","details":{},"message":"ok","status":"success"}`, len(tt.shares)) + `]}`
				s := newScripted(t, reply(200, ok))
				c := mustClient(t, s.URL, Config{APIVersion: tt.version, Notify: tt.notify})
				call := c.Share
				if method == http.MethodPut {
					call = c.UpdateShares
				}
				if _, err := call(t.Context(), "Deals", "4150868000002515001", tt.shares); err != nil {
					t.Fatalf("%s: %v", method, err)
				}
				seen := s.seen()
				if len(seen) != 1 {
					t.Fatalf("requests = %d, want 1", len(seen))
				}
				got := seen[0]
				if got.Method != method || got.Path != tt.wantPath || got.Auth != authScheme+testAccessToken {
					t.Errorf("request = %s %s auth %q, want %s %s auth %q", got.Method, got.Path, got.Auth, method, tt.wantPath, authScheme+testAccessToken)
				}
				if diff := cmp.Diff(jsonValue(t, got.Body), jsonValue(t, tt.wantBody)); diff != "" {
					t.Errorf("body (-got +want):\n%s", diff)
				}
			})
		}
	}
}

func repeat(s string, n int) string {
	out := ""
	for i := range n {
		if i > 0 {
			out += ","
		}
		out += s
	}
	return out
}

func TestShareRefusesInvalidRequestsLocally(t *testing.T) {
	user := Recipient{Type: RecipientUser, ID: "4150868000001174048"}
	tests := []struct {
		name     string
		version  string
		module   string
		recordID string
		shares   []Share
	}{
		{"empty list", "v8", "Deals", "1", nil},
		{"group in v2", "v2", "Deals", "1", []Share{{Recipient: Recipient{Type: RecipientGroup, ID: "9"}, Permission: PermissionReadOnly}}},
		{"role in v2.1", "v2.1", "Deals", "1", []Share{{Recipient: Recipient{Type: RecipientRole, ID: "9"}, Permission: PermissionReadOnly}}},
		{"empty recipient id", "v8", "Deals", "1", []Share{{Recipient: Recipient{Type: RecipientUser}, Permission: PermissionReadOnly}}},
		{"zero recipient type", "v8", "Deals", "1", []Share{{Recipient: Recipient{ID: "9"}, Permission: PermissionReadOnly}}},
		{"zero permission", "v8", "Deals", "1", []Share{{Recipient: user}}},
		{"bad permission", "v2", "Deals", "1", []Share{{Recipient: user, Permission: 42}}},
		{"empty module", "v8", "", "1", []Share{{Recipient: user, Permission: PermissionReadOnly}}},
		{"empty record id", "v8", "Deals", "", []Share{{Recipient: user, Permission: PermissionReadOnly}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newScripted(t, reply(500, `{}`))
			c := mustClient(t, s.URL, Config{APIVersion: tt.version})
			for name, call := range map[string]func() ([]Result, error){
				"Share":        func() ([]Result, error) { return c.Share(t.Context(), tt.module, tt.recordID, tt.shares) },
				"UpdateShares": func() ([]Result, error) { return c.UpdateShares(t.Context(), tt.module, tt.recordID, tt.shares) },
			} {
				_, err := call()
				if !errors.Is(err, ErrInvalidRequest) {
					t.Fatalf("%s error = %v, want ErrInvalidRequest", name, err)
				}
				var r interface{ Retryable() bool }
				if !errors.As(err, &r) || r.Retryable() {
					t.Errorf("%s error %v: want a chain with Retryable() == false", name, err)
				}
			}
			if n := len(s.seen()); n != 0 {
				t.Errorf("requests sent = %d, want 0", n)
			}
			if n := s.tokenReplies.Load(); n != 0 {
				t.Errorf("token requests = %d, want 0", n)
			}
		})
	}
}

func TestSharedWithDecodesDocumentedReplies(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   []SharedEntry
	}{
		{name: "204 no shares", status: 204, body: ``, want: nil},
		{name: "empty object", status: 200, body: `{}`, want: nil},
		{
			name:   "v8 entry",
			status: 200,
			body: `{"share":[{"shared_with":{"name":"Jane Smith","id":"3652397000000281001","type":"users","zuid":"679952958"},
				"share_related_records":true,
				"shared_through":{"module":{"name":"Contacts","id":"3652397000000002179"},"name":"Patricia","id":"3652397000000649013"},
				"shared_time":"2022-03-01T11:25:28+05:30","permission":"full_access",
				"shared_by":{"name":"Patricia Boyle","id":"3652397000000186017","zuid":"678521418"},
				"type":"private"}]}`,
			want: []SharedEntry{{
				Recipient: Recipient{Type: RecipientUser, ID: "3652397000000281001"}, Name: "Jane Smith",
				Permission: PermissionFullAccess, ShareRelated: true,
				SharedThroughModule: "Contacts", SharedThroughID: "3652397000000649013",
				SharedBy: "3652397000000186017", SharedTime: "2022-03-01T11:25:28+05:30",
			}},
		},
		{
			name:   "v8 group and role entries",
			status: 200,
			body: `{"share":[{"shared_with":{"name":"EMEA Sales","id":"4150868000002000101","type":"groups"},"share_related_records":false,
				"shared_through":{"module":{"name":"Deals","id":"1"},"id":"77"},"permission":"read_only","type":"private"},
				{"shared_with":{"name":"Sales Manager","id":"4150868000002000201","type":"roles"},"share_related_records":false,
				"shared_through":{"module":{"name":"Deals","id":"1"},"id":"77"},"permission":"read_write","type":"private"}]}`,
			want: []SharedEntry{
				{Recipient: Recipient{Type: RecipientGroup, ID: "4150868000002000101"}, Name: "EMEA Sales", Permission: PermissionReadOnly, SharedThroughModule: "Deals", SharedThroughID: "77"},
				{Recipient: Recipient{Type: RecipientRole, ID: "4150868000002000201"}, Name: "Sales Manager", Permission: PermissionReadWrite, SharedThroughModule: "Deals", SharedThroughID: "77"},
			},
		},
		{
			name:   "v2 entry with user and shareable_user",
			status: 200,
			body: `{"share":[{"share_related_records":false,
				"shared_through":{"module":{"name":"Contacts","id":"4150868000000002179"},"id":"4150868000001176057","entity_name":"Patricia Boyle"},
				"shared_time":"2019-05-10T14:35:05+05:30","permission":"read_write",
				"shared_by":{"id":"4150868000000225013","full_name":"Integration User","zuid":"1"},
				"user":{"id":"4150868000001174048","full_name":"Sam Okafor","zuid":"2"}}],
				"shareable_user":[{"id":"4150868000001199001","full_name":"Ken Ito","zuid":"3"}]}`,
			want: []SharedEntry{{
				Recipient: Recipient{Type: RecipientUser, ID: "4150868000001174048"}, Name: "Sam Okafor",
				Permission: PermissionReadWrite, SharedThroughModule: "Contacts", SharedThroughID: "4150868000001176057",
				SharedBy: "4150868000000225013", SharedTime: "2019-05-10T14:35:05+05:30",
			}},
		},
		{
			name:   "numeric ids keep every digit",
			status: 200,
			body:   `{"share":[{"user":{"id":4150868000001174048},"permission":"read_only","share_related_records":"true","shared_through":{"id":4150868000002515001}}]}`,
			want: []SharedEntry{{
				Recipient: Recipient{Type: RecipientUser, ID: "4150868000001174048"}, Permission: PermissionReadOnly,
				ShareRelated: true, SharedThroughID: "4150868000002515001",
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newScripted(t, reply(tt.status, tt.body))
			c := mustClient(t, s.URL, Config{})
			got, err := c.SharedWith(t.Context(), "Deals", "77")
			if err != nil {
				t.Fatalf("SharedWith: %v", err)
			}
			if diff := cmp.Diff(got, tt.want); diff != "" {
				t.Errorf("SharedWith (-got +want):\n%s", diff)
			}
		})
	}
}

func TestListSharesQuery(t *testing.T) {
	s := newScripted(t, reply(204, ``))
	c := mustClient(t, s.URL, Config{})
	if _, err := c.ListShares(t.Context(), "Price_Books", "77", ListQuery{SharedTo: "4150868000001174048", View: "summary"}); err != nil {
		t.Fatalf("ListShares: %v", err)
	}
	got := s.seen()
	want := []seenRequest{{
		Method: "GET", Path: "/crm/v8/Price_Books/77/actions/share", Query: "sharedTo=4150868000001174048&view=summary",
		Auth: authScheme + testAccessToken,
	}}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("requests (-got +want):\n%s", diff)
	}
}

func TestSharedWithErrors(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		body    string
		wantErr *Error
	}{
		{
			name:    "pattern not matched",
			status:  400,
			body:    `{"code":"PATTERN_NOT_MATCHED","details":{"api_name":"view"},"message":"Please check whether the input values are correct","status":"error"}`,
			wantErr: &Error{Status: 400, Code: "PATTERN_NOT_MATCHED", Message: "Please check whether the input values are correct", Details: map[string]any{"api_name": "view"}},
		},
		{
			name:    "unknown permission is a clear error",
			status:  200,
			body:    `{"share":[{"user":{"id":"1"},"permission":"owner"}]}`,
			wantErr: nil, // checked below by type only
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newScripted(t, reply(tt.status, tt.body))
			c := mustClient(t, s.URL, Config{})
			got, err := c.SharedWith(t.Context(), "Deals", "77")
			var ze *Error
			if !errors.As(err, &ze) {
				t.Fatalf("SharedWith = %v, %v; want a *Error", got, err)
			}
			if tt.wantErr == nil {
				return
			}
			if diff := cmp.Diff(ze, tt.wantErr); diff != "" {
				t.Errorf("error (-got +want):\n%s", diff)
			}
		})
	}
}

func TestRevokeAllDecodesDocumentedReplies(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		body       string
		wantErr    bool
		wantIs     error
		wantStatus int
	}{
		{name: "object-shaped success", status: 200, body: `{"share":{"code":"SUCCESS","details":{"id":"4150868000001148212"},"message":"Sharing Revoked","status":"success"}}`},
		{name: "nothing to revoke up to v7", status: 400, body: `{"code":"BAD_REQUEST","details":{},"message":"No sharing through this record is available to revoke.","status":"error"}`,
			wantErr: true, wantIs: ErrNothingToRevoke, wantStatus: 400},
		{name: "nothing to revoke v8", status: 400, body: `{"code":"CANNOT_PROCESS","details":{},"message":"No sharing through this record is available to revoke","status":"error"}`,
			wantErr: true, wantIs: ErrNothingToRevoke, wantStatus: 400},
		{name: "object-shaped error", status: 200, body: `{"share":{"code":"INVALID_DATA","details":{},"message":"Scheduler is running.","status":"error"}}`,
			wantErr: true, wantIs: ErrSchedulerRunning, wantStatus: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newScripted(t, reply(tt.status, tt.body))
			c := mustClient(t, s.URL, Config{})
			err := c.RevokeAll(t.Context(), "Deals", "77")
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("RevokeAll: %v", err)
				}
				if got := s.seen(); len(got) != 1 || got[0].Method != http.MethodDelete || got[0].Body != "" {
					t.Errorf("requests = %+v, want one DELETE without a body", got)
				}
				return
			}
			var ze *Error
			if !errors.As(err, &ze) || !errors.Is(err, tt.wantIs) || ze.Status != tt.wantStatus {
				t.Errorf("RevokeAll error = %v, want a *Error with status %d matching %v", err, tt.wantStatus, tt.wantIs)
			}
		})
	}
}
