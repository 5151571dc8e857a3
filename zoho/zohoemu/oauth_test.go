package zohoemu

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

type tokenReply struct {
	AccessToken      string `json:"access_token"`
	APIDomain        string `json:"api_domain"`
	TokenType        string `json:"token_type"`
	ExpiresIn        int64  `json:"expires_in"`
	ExpiresInSec     int64  `json:"expires_in_sec"`
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
	Status           string `json:"status"`
}

func postToken(t *testing.T, f *fixture, req *http.Request) tokenReply {
	t.Helper()
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("token status = %d, want 200", resp.StatusCode)
	}
	var v tokenReply
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func tokenRequest(t *testing.T, f *fixture, form string, vals url.Values) *http.Request {
	t.Helper()
	var (
		req *http.Request
		err error
	)
	switch form {
	case "urlencoded":
		req, err = http.NewRequestWithContext(t.Context(), http.MethodPost, f.srv.URL+"/oauth/v2/token", strings.NewReader(vals.Encode()))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	case "multipart":
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		for k := range vals {
			_ = mw.WriteField(k, vals.Get(k))
		}
		_ = mw.Close()
		req, err = http.NewRequestWithContext(t.Context(), http.MethodPost, f.srv.URL+"/oauth/v2/token", &b)
		if err == nil {
			req.Header.Set("Content-Type", mw.FormDataContentType())
		}
	case "query":
		req, err = http.NewRequestWithContext(t.Context(), http.MethodPost, f.srv.URL+"/oauth/v2/token?"+vals.Encode(), nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func devForm() url.Values {
	return url.Values{"grant_type": {"refresh_token"}, "client_id": {devClient}, "client_secret": {devSecret}, "refresh_token": {devRefresh}}
}

func TestToken_forms(t *testing.T) {
	for _, form := range []string{"urlencoded", "multipart", "query"} {
		t.Run(form, func(t *testing.T) {
			f := newFixture(t, nil)
			got := postToken(t, f, tokenRequest(t, f, form, devForm()))
			if !strings.HasPrefix(got.AccessToken, "1000.") {
				t.Errorf("access_token = %q, want a 1000. token", got.AccessToken)
			}
			want := tokenReply{AccessToken: got.AccessToken, APIDomain: f.srv.URL, TokenType: "Bearer", ExpiresIn: 3600}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("token reply (-want +got):\n%s", diff)
			}
			r := f.do(t, got.AccessToken, http.MethodGet, sharePath("v8", "Deals", deal2), "")
			checkStatus(t, r, http.StatusOK)
		})
	}
}

func TestToken_legacyShape(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.LegacyTokenReply = true })
	got := postToken(t, f, tokenRequest(t, f, "urlencoded", devForm()))
	if got.ExpiresIn != 3600000 || got.ExpiresInSec != 3600 {
		t.Errorf("expires_in = %d, expires_in_sec = %d, want 3600000 and 3600", got.ExpiresIn, got.ExpiresInSec)
	}
}

func TestToken_failures(t *testing.T) {
	tests := []struct {
		name   string
		change func(url.Values)
		want   string
	}{
		{"unknown client", func(v url.Values) { v.Set("client_id", "1000.NOPE") }, "invalid_client"},
		{"wrong secret", func(v url.Values) { v.Set("client_secret", "nope") }, "invalid_client_secret"},
		{"unknown refresh token", func(v url.Values) { v.Set("refresh_token", "1000.nope") }, "invalid_code"},
		{"wrong grant", func(v url.Values) { v.Set("grant_type", "password") }, "unsupported_grant_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			vals := devForm()
			tt.change(vals)
			got := postToken(t, f, tokenRequest(t, f, "urlencoded", vals))
			if diff := cmp.Diff(tokenReply{Error: tt.want}, got); diff != "" {
				t.Errorf("reply (-want +got):\n%s", diff)
			}
		})
	}
}

func TestToken_throttle(t *testing.T) {
	f := newFixture(t, nil)
	for range 10 {
		f.token(t)
	}
	got := postToken(t, f, tokenRequest(t, f, "urlencoded", devForm()))
	want := tokenReply{
		ErrorDescription: "You have made too many requests continuously. Please try again after some time.",
		Error:            "Access Denied", Status: "failure",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("11th refresh (-want +got):\n%s", diff)
	}
	if got := f.emu.TokenRefreshes(); got != 10 {
		t.Errorf("TokenRefreshes = %d, want 10", got)
	}
	f.clk.Add(10 * time.Minute)
	f.token(t)
}

func TestToken_expiryEvictionRevocation(t *testing.T) {
	invalid := `{"code":"INVALID_TOKEN","details":{},"message":"invalid oauth token","status":"error"}`
	path := sharePath("v8", "Deals", deal2)

	t.Run("expires after its ttl", func(t *testing.T) {
		f := newFixture(t, func(c *Config) { c.TokenTTL = time.Minute })
		tok := f.token(t)
		checkStatus(t, f.do(t, tok, http.MethodGet, path, ""), http.StatusOK)
		f.clk.Add(time.Minute)
		got := f.do(t, tok, http.MethodGet, path, "")
		checkStatus(t, got, http.StatusUnauthorized)
		checkJSON(t, got.body, invalid)
	})
	t.Run("ExpireTokens", func(t *testing.T) {
		f := newFixture(t, nil)
		tok := f.token(t)
		f.emu.ExpireTokens()
		checkJSON(t, f.do(t, tok, http.MethodGet, path, "").body, invalid)
		checkStatus(t, f.do(t, f.token(t), http.MethodGet, path, ""), http.StatusOK)
	})
	t.Run("the 16th token evicts the oldest", func(t *testing.T) {
		f := newFixture(t, nil)
		var toks []string
		for range 16 {
			toks = append(toks, f.token(t))
			f.clk.Add(time.Minute) // stay under the refresh throttle
		}
		checkJSON(t, f.do(t, toks[0], http.MethodGet, path, "").body, invalid)
		for _, tok := range toks[1:] {
			checkStatus(t, f.do(t, tok, http.MethodGet, path, ""), http.StatusOK)
		}
	})
	t.Run("revoke", func(t *testing.T) {
		f := newFixture(t, nil)
		tok := f.token(t)
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, f.srv.URL+"/oauth/v2/token/revoke?token="+devRefresh, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := postToken(t, f, req); got.Status != "success" {
			t.Errorf("revoke status = %q, want success", got.Status)
		}
		checkJSON(t, f.do(t, tok, http.MethodGet, path, "").body, invalid)
		if got := postToken(t, f, tokenRequest(t, f, "query", devForm())); got.Error != "invalid_code" {
			t.Errorf("refresh after revoke: error = %q, want invalid_code", got.Error)
		}
	})
}

func TestAuth_header(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.token(t)
	path := f.srv.URL + sharePath("v8", "Deals", deal2)
	for _, h := range []string{"", "Bearer " + tok, "Zoho-oauthtoken "} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if h != "" {
			req.Header.Set("Authorization", h)
		}
		resp, err := f.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var v apiError
		err = json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusUnauthorized || v.Code != "AUTHENTICATION_FAILURE" {
			t.Errorf("Authorization %q: %d %s, want 401 AUTHENTICATION_FAILURE", strings.Split(h, " ")[0], resp.StatusCode, v.Code)
		}
	}
}

func TestUsers(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.token(t)
	type page struct {
		Users []struct {
			ID      string `json:"id"`
			Status  string `json:"status"`
			Confirm bool   `json:"confirm"`
		} `json:"users"`
		Info pageInfo `json:"info"`
	}
	got := f.do(t, tok, http.MethodGet, "/crm/v8/users?type=ActiveConfirmedUsers&page=2&per_page=2&", "")
	checkStatus(t, got, http.StatusOK)
	var p page
	decodeJSON(t, got.body, &p)
	var ids []string
	for _, u := range p.Users {
		ids = append(ids, u.ID)
	}
	if diff := cmp.Diff([]string{ken, sam}, ids); diff != "" {
		t.Errorf("page 2 ids (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(pageInfo{PerPage: 2, Count: 2, Page: 2, MoreRecords: true}, p.Info); diff != "" {
		t.Errorf("info (-want +got):\n%s", diff)
	}
	tests := []struct {
		path   string
		status int
		count  int
	}{
		{"/crm/v2/users?type=AllUsers", 200, 7},
		{"/crm/v2.1/users?type=DeactiveUsers", 200, 1},
		{"/crm/v8/users?type=NotConfirmedUsers", 200, 1},
		{"/crm/v8/users?type=ActiveUsers", 200, 6},
		{"/crm/v8/users?type=ConfirmedUsers", 200, 6},
		{"/crm/v8/users?type=ActiveConfirmedUsers&page=9", 204, 0},
		{"/crm/v8/users?type=DeletedUsers", 204, 0},
		{"/crm/v8/users?type=Everyone", 400, 0},
		{"/crm/v8/users?per_page=201", 400, 0},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			got := f.do(t, tok, http.MethodGet, tt.path, "")
			checkStatus(t, got, tt.status)
			if tt.status == 200 {
				var p page
				decodeJSON(t, got.body, &p)
				if p.Info.Count != tt.count || len(p.Users) != tt.count {
					t.Errorf("count = %d (%d users), want %d", p.Info.Count, len(p.Users), tt.count)
				}
			}
		})
	}
	t.Run("scope", func(t *testing.T) {
		if err := f.emu.LoadSeed(&Seed{Clients: []Client{{ClientID: devClient, ClientSecret: devSecret, RefreshToken: devRefresh, UserID: integ,
			Scopes: []string{"ZohoCRM.share.deals.READ"}}}}); err != nil {
			t.Fatal(err)
		}
		got := f.do(t, f.token(t), http.MethodGet, "/crm/v8/users", "")
		checkStatus(t, got, http.StatusUnauthorized)
		checkJSON(t, got.body, `{"code":"OAUTH_SCOPE_MISMATCH","details":{},"message":"invalid oauth scope to access this URL","status":"error"}`)
	})
}
