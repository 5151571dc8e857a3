package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/crmshare/crmshare/zoho/zohoemu"
)

// TestIngressEndToEnd posts a webhook three times through the service's HTTP
// ingress: the share is written once. An unauthenticated post stores nothing.
func TestIngressEndToEnd(t *testing.T) {
	const token = "e2e-ingress-token"
	s := startE2E(t, e2eOptions{Mutate: func(c *Config) {
		c.Ingress.Addr = "127.0.0.1:0"
		c.Ingress.BearerToken = token
	}})
	if s.svc.ingressAddr == "" {
		t.Fatal("ingress not started")
	}
	body, err := json.Marshal(e2eEvent("ev-hook-1", "deal.assigned", map[string]any{"deal_id": e2eDeal, "user_id": e2eMaria}))
	if err != nil {
		t.Fatal(err)
	}
	post := func(auth string) int {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+s.svc.ingressAddr+"/", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/cloudevents+json")
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := post(""); got != http.StatusUnauthorized {
		t.Errorf("unauthenticated: got %d, want 401", got)
	}
	for i, want := range []int{http.StatusAccepted, http.StatusOK, http.StatusOK} {
		if got := post(token); got != want {
			t.Errorf("attempt %d: got %d, want %d", i+1, got, want)
		}
	}
	st, err := s.js.Stream(t.Context(), s.cfg.NATS.Stream.Name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("stream holds %d messages, want 1", info.State.Msgs)
	}
	s.waitSettled(t, info.State.LastSeq)
	want := []zohoemu.Entry{{Type: "users", ID: e2eMaria, Permission: "read_write"}}
	if diff := cmp.Diff(s.emu.Shares("Deals", e2eDeal), want); diff != "" {
		t.Errorf("shares (-got +want):\n%s", diff)
	}
	if got := s.emu.Requests().Writes; got != 1 {
		t.Errorf("writes: got %d, want 1", got)
	}
}
