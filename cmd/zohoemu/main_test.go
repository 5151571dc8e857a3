package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestMain_servesTokenAndShares(t *testing.T) {
	m := NewMain()
	var out strings.Builder
	m.Stdout = &out
	if err := m.ParseFlags(t.Context(), []string{"--addr", "127.0.0.1:0", "--seed", "../../deploy/examples/emulator-seed.json", "--error-rate", "0"}); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	if !strings.Contains(out.String(), m.URL()) || !strings.Contains(out.String(), "refresh_token: 1000.dev.refresh") {
		t.Errorf("banner = %q, want the URL and the dev refresh token", out.String())
	}

	resp, err := http.PostForm(m.URL()+"/oauth/v2/token", url.Values{
		"grant_type": {"refresh_token"}, "client_id": {"1000.DEVCLIENT"},
		"client_secret": {"dev-secret"}, "refresh_token": {"1000.dev.refresh"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		APIDomain   string `json:"api_domain"`
	}
	err = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if tok.APIDomain != m.URL() {
		t.Errorf("api_domain = %q, want %q", tok.APIDomain, m.URL())
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, tok.APIDomain+"/crm/v8/Deals/4150868000002515002/actions/share", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Zoho-oauthtoken "+tok.AccessToken)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"id":"4150868000001199001"`) {
		t.Errorf("GET share = %d %s, want 200 listing the seeded share", resp.StatusCode, b)
	}
}

func TestMain_ParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr bool
		rules   int
	}{
		{name: "defaults", args: nil},
		{name: "faults", args: []string{"--error-rate", "0.1", "--drop-rate", "0.05", "--429-rate", "0.2", "--after-error-rate", "0.1"}, rules: 4},
		{name: "rate out of range", args: []string{"--error-rate", "2"}, wantErr: true},
		{name: "stray argument", args: []string{"extra"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMain()
			m.Stdout = io.Discard
			err := m.ParseFlags(t.Context(), tt.args)
			if got := err != nil; got != tt.wantErr {
				t.Fatalf("ParseFlags error = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && len(m.Faults.Rules) != tt.rules {
				t.Errorf("got %d fault rules, want %d", len(m.Faults.Rules), tt.rules)
			}
		})
	}
}
