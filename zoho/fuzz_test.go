package zoho

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fuzzReply is the reply the fuzz server sends to every CRM call.
type fuzzReply struct {
	mu          sync.Mutex
	status      int
	contentType string
	body        []byte
}

func (f *fuzzReply) set(status int, contentType string, body []byte) {
	f.mu.Lock()
	f.status, f.contentType, f.body = status, contentType, body
	f.mu.Unlock()
}

func (f *fuzzReply) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/oauth/v2/token" {
		w.Header().Set("Content-Type", "application/json;charset=UTF-8")
		io.WriteString(w, `{"access_token":"`+testAccessToken+`","api_domain":"http://`+r.Host+`","token_type":"Bearer","expires_in":3600}`)
		return
	}
	_, _ = io.Copy(io.Discard, r.Body)
	f.mu.Lock()
	status, ct, body := f.status, f.contentType, f.body
	f.mu.Unlock()
	if ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// fuzzOps are the client calls whose replies FuzzReplies decodes.
var fuzzOps = []string{"share", "update", "get", "revoke_all", "users"}

// FuzzReplies sends the real client's calls to a server that answers with an
// arbitrary status, content type and body, and checks what the client makes
// of it: no panic; 429 and 5xx are always errors that may be retried; a call
// that succeeds had a 2xx reply (or, for writes, per-entry results) with one
// result per entry sent; and no error text carries a credential. The seeds
// are the reply shapes documented in zoho-share-api.md.
func FuzzReplies(f *testing.F) {
	ctJSON := "application/json;charset=UTF-8"
	seeds := []struct {
		op          string
		status      int
		contentType string
		body        string
	}{
		{"share", 200, ctJSON, `{"share":[{"code":"SUCCESS","details":{},"message":"record will be shared successfully","status":"success"}]}`},
		{"share", 207, ctJSON, `{"share":[{"code":"SUCCESS","details":{},"message":"record will be shared successfully","status":"success"},{"code":"INVALID_DATA","details":{"api_name":"shared_with","json_path":"$.share[1].shared_with"},"message":"invalid data","status":"error"}]}`},
		{"share", 400, ctJSON, `{"code":"INVALID_DATA","details":{"resource_path_index":1},"message":"ENTITY_ID_INVALID","status":"error"}`},
		{"share", 403, ctJSON, `{"code":"SHARE_LIMIT_EXCEEDED","details":{},"message":"record can be shared only with 10 users","status":"error"}`},
		{"update", 403, ctJSON, `{"share":[{"code":"CANNOT_PROCESS","details":{},"message":"Scheduler is running","status":"error"}]}`},
		{"update", 400, ctJSON, `{"share":[{"code":"INVALID_DATA","details":{},"message":"Scheduler is running. Please try again later","status":"error"}]}`},
		{"update", 201, ctJSON, `{"share":[{"code":"SUCCESS","details":{},"message":"record will be shared successfully","status":"success"}]}`},
		{"get", 200, ctJSON, `{"share":[{"share_related_records":false,"shared_through":{"module":{"name":"Contacts","id":"3652397000000002179"},"id":"3652397000000649013","entity_name":"Patricia"},"shared_time":"2019-05-10T14:35:05+05:30","permission":"full_access","shared_by":{"id":"3652397000000186017","full_name":"Patricia Boyle","zuid":"678521418"},"user":{"id":"3652397000000281001","full_name":"Jane Smith","zuid":"679952958"}}],"shareable_user":[{"id":"3652397000000281002","full_name":"Ken Ito","zuid":"679952959"}]}`},
		{"get", 200, ctJSON, `{"share":[{"shared_with":{"name":"Jane Smith","id":"3652397000000281001","type":"users","zuid":"679952958"},"share_related_records":true,"shared_through":{"module":{"name":"Contacts","id":"3652397000000002179"},"name":"Patricia","id":"3652397000000649013"},"shared_time":"2022-03-01T11:25:28+05:30","permission":"full_access","shared_by":{"name":"Patricia Boyle","id":"3652397000000186017","zuid":"678521418"},"type":"private"}]}`},
		{"get", 204, "", ``},
		{"revoke_all", 200, ctJSON, `{"share":{"code":"SUCCESS","details":{"id":"4150868000001148212"},"message":"Sharing Revoked","status":"success"}}`},
		{"revoke_all", 400, ctJSON, `{"code":"CANNOT_PROCESS","details":{},"message":"No sharing through this record is available to revoke","status":"error"}`},
		{"revoke_all", 400, ctJSON, `{"code":"BAD_REQUEST","details":{},"message":"No sharing through this record is available to revoke.","status":"error"}`},
		{"users", 200, ctJSON, `{"users":[{"id":"4150868000000225013","email":"integration@acme.example","full_name":"Integration User","status":"active","confirm":true}],"info":{"per_page":200,"count":1,"page":1,"more_records":false}}`},
		{"users", 401, ctJSON, `{"code":"INVALID_TOKEN","details":{},"message":"invalid oauth token","status":"error"}`},
		{"share", 429, ctJSON, `{"code":"TOO_MANY_REQUESTS","details":{},"message":"too many requests","status":"error"}`},
		{"get", 500, ctJSON, `{"code":"INTERNAL_ERROR","details":{},"message":"Internal Server Error","status":"error"}`},
		{"share", 502, "text/html", `<html><body>Bad Gateway</body></html>`},
		{"update", 200, "text/plain", `OK`},
		{"get", 200, ctJSON, `{"share":{"code":"SUCCESS"}}`},
	}
	for _, s := range seeds {
		op := 0
		for i, name := range fuzzOps {
			if name == s.op {
				op = i
			}
		}
		f.Add(uint8(op), uint16(s.status), s.contentType, []byte(s.body))
	}

	rep := &fuzzReply{}
	srv := httptest.NewServer(rep)
	f.Cleanup(srv.Close)
	shares := []Share{
		{Recipient: Recipient{Type: RecipientUser, ID: "4150868000001174048"}, Permission: PermissionReadWrite, ShareRelated: true},
		{Recipient: Recipient{Type: RecipientUser, ID: "4150868000001199001"}, Permission: PermissionReadOnly},
	}

	f.Fuzz(func(t *testing.T, op uint8, status uint16, contentType string, body []byte) {
		st := 200 + int(status)%400 // 200..599: httptest cannot send 1xx as final replies
		rep.set(st, strings.Map(func(r rune) rune {
			if r < ' ' || r == 0x7f {
				return -1 // not a valid header value
			}
			return r
		}, contentType), body)
		// A fresh client each time: a 429 must not hold the next input.
		c := mustClient(t, srv.URL, Config{APIVersion: []string{"v2", "v2.1", "v8"}[int(op/8)%3], Timeout: 2 * time.Second})
		ctx := t.Context()
		name := fuzzOps[int(op)%len(fuzzOps)]
		var (
			err     error
			results []Result
		)
		switch name {
		case "share":
			results, err = c.Share(ctx, "Deals", "4150868000002515001", shares)
		case "update":
			results, err = c.UpdateShares(ctx, "Deals", "4150868000002515001", shares)
		case "get":
			_, err = c.SharedWith(ctx, "Deals", "4150868000002515001")
		case "revoke_all":
			err = c.RevokeAll(ctx, "Deals", "4150868000002515001")
		case "users":
			_, err = c.Users(ctx)
		}

		if err != nil {
			for _, secret := range []string{testAccessToken, testRefreshToken, testClientSecret} {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("%s: error %q carries a credential", name, err)
				}
			}
			var ze *Error
			var ce *CredentialsError
			if !errors.As(err, &ze) && !errors.As(err, &ce) {
				t.Fatalf("%s %d: error %v (%T) is neither *Error nor *CredentialsError", name, st, err, err)
			}
		}
		if st == http.StatusTooManyRequests || st >= 500 {
			var r interface{ Retryable() bool }
			if err == nil {
				t.Fatalf("%s: %d reply %q taken as success", name, st, body)
			}
			if !errors.As(err, &r) || !r.Retryable() {
				t.Fatalf("%s: %d reply gave %v, which is not retryable", name, st, err)
			}
		}
		if err != nil {
			return
		}
		switch name {
		case "share", "update":
			if len(results) != len(shares) {
				t.Fatalf("%s %d: %d results for %d entries", name, st, len(results), len(shares))
			}
			for i, r := range results {
				var ze *Error
				if r.Err != nil && !errors.As(r.Err, &ze) {
					t.Fatalf("%s: result %d error %v (%T) is not a *Error", name, i, r.Err, r.Err)
				}
			}
			if st/100 != 2 && st != http.StatusBadRequest && st != http.StatusForbidden {
				t.Fatalf("%s: %d reply taken as per-entry results", name, st)
			}
		default:
			if st/100 != 2 {
				t.Fatalf("%s: %d reply %q taken as success", name, st, body)
			}
		}
	})
}
