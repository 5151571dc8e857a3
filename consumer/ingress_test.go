package consumer

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go/jetstream"
)

const (
	testBearer = "test-bearer-token"
	testHMAC   = "test-hmac-secret"
)

// ingressEnv is a JetStream with the service's stream and an ingress in front.
type ingressEnv struct {
	tj  *testJS
	srv *httptest.Server
}

func startIngress(t *testing.T, cfg IngressConfig) *ingressEnv {
	t.Helper()
	tj := startJS(t)
	if _, err := tj.js.CreateStream(t.Context(), jetstream.StreamConfig{
		Name: "CRM_EVENTS", Subjects: []string{"crm.events.>"}, Duplicates: 2 * 60e9,
	}); err != nil {
		t.Fatal(err)
	}
	cfg.JS = tj.js
	cfg.Stream = "CRM_EVENTS"
	in, err := NewIngress(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(in)
	t.Cleanup(srv.Close)
	return &ingressEnv{tj: tj, srv: srv}
}

func structuredBody(t *testing.T, ev event.Event) []byte {
	t.Helper()
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sign(body []byte) string {
	m := hmac.New(sha256.New, []byte(testHMAC))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// post sends body with headers and returns the status and decoded reply.
func (e *ingressEnv) post(t *testing.T, body []byte, h map[string]string) (int, ingressReply) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, e.srv.URL+"/", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var rep ingressReply
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatalf("reply %d is not JSON: %q", resp.StatusCode, raw)
	}
	return resp.StatusCode, rep
}

func (e *ingressEnv) stored(t *testing.T) uint64 {
	t.Helper()
	st, err := e.tj.js.Stream(t.Context(), "CRM_EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func TestIngressStatus(t *testing.T) {
	ev := newEvent(t, "evt-1", "deal.assigned", "Deals/1")
	body := structuredBody(t, ev)
	badBody, _ := json.Marshal(map[string]any{"specversion": "1.0", "id": "x", "type": "deal.assigned"})
	batch := []byte("[" + string(body) + "," + string(structuredBody(t, newEvent(t, "evt-3", "deal.closed", "Deals/3"))) + "]")
	badBatch := []byte("[" + string(body) + "," + string(badBody) + "]")
	ct := map[string]string{"Content-Type": contentTypeStructured, "Authorization": "Bearer " + testBearer}
	with := func(m map[string]string, k, v string) map[string]string {
		out := map[string]string{}
		for a, b := range m {
			out[a] = b
		}
		if v == "" {
			delete(out, k)
		} else {
			out[k] = v
		}
		return out
	}
	tests := []struct {
		name       string
		body       []byte
		header     map[string]string
		wantStatus int
		wantStored uint64 // messages in the stream afterwards
	}{
		{"no authentication", body, with(ct, "Authorization", ""), http.StatusUnauthorized, 0},
		{"wrong bearer", body, with(ct, "Authorization", "Bearer nope"), http.StatusUnauthorized, 0},
		{"wrong signature", body, with(with(ct, "Authorization", ""), "X-Signature-256", sign([]byte("other"))), http.StatusUnauthorized, 0},
		{"invalid event", badBody, ct, http.StatusBadRequest, 0},
		{"not a cloudevent", []byte(`{"hello":1}`), with(ct, "Content-Type", "application/json"), http.StatusBadRequest, 0},
		{"batch with an invalid event publishes nothing", badBatch, with(ct, "Content-Type", contentTypeBatch), http.StatusBadRequest, 0},
		{"over the body limit", bytes.Repeat([]byte("x"), 5000), ct, http.StatusRequestEntityTooLarge, 0},
		{"structured with bearer", body, ct, http.StatusAccepted, 1},
		{"duplicate", body, ct, http.StatusOK, 1},
		{"structured with signature", structuredBody(t, newEvent(t, "evt-4", "deal.assigned", "Deals/4")),
			nil, http.StatusAccepted, 2},
		{"batch", batch, with(ct, "Content-Type", contentTypeBatch), http.StatusAccepted, 3},
		{"binary", []byte(`{"deal_id":"5"}`), map[string]string{
			"Authorization": "Bearer " + testBearer, "Content-Type": "application/json",
			"Ce-Specversion": "1.0", "Ce-Id": "evt-5", "Ce-Source": "/test/crm", "Ce-Type": "deal.assigned",
		}, http.StatusAccepted, 4},
		{"type that is no subject", structuredBody(t, newEvent(t, "evt-6", "deal.*", "Deals/6")), ct, http.StatusBadRequest, 4},
	}
	env := startIngress(t, IngressConfig{BearerToken: testBearer, HMACSecret: testHMAC, MaxBodyBytes: 4096})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.header
			if h == nil { // signed
				h = map[string]string{"Content-Type": contentTypeStructured, "X-Signature-256": sign(tc.body)}
			}
			got, rep := env.post(t, tc.body, h)
			if got != tc.wantStatus {
				t.Errorf("status: got %d, want %d (%+v)", got, tc.wantStatus, rep)
			}
			if got >= 400 && rep.Error == "" {
				t.Errorf("status %d without a reason", got)
			}
			if n := env.stored(t); n != tc.wantStored {
				t.Errorf("stored: got %d, want %d", n, tc.wantStored)
			}
		})
	}
}

func TestIngressStoredMessage(t *testing.T) {
	env := startIngress(t, IngressConfig{})
	ev := newEvent(t, "evt-1", "deal.assigned", "Deals/1")
	body := structuredBody(t, ev)
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	status, rep := env.post(t, body, map[string]string{"Content-Type": contentTypeStructured, "traceparent": parent})
	if status != http.StatusAccepted {
		t.Fatalf("status %d: %+v", status, rep)
	}
	want := []IngressResult{{ID: "evt-1", Source: "/test/crm", Type: "deal.assigned", Subject: "crm.events.deal.assigned",
		Status: "stored", Stream: "CRM_EVENTS", Seq: 1}}
	if diff := cmp.Diff(rep.Results, want); diff != "" {
		t.Errorf("results (-got +want):\n%s", diff)
	}
	st, err := env.tj.js.Stream(t.Context(), "CRM_EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetMsg(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.Data, body) {
		t.Errorf("stored body differs from the posted one:\n%s\n%s", m.Data, body)
	}
	if got, want := m.Header.Get(jetstream.MsgIDHeader), EventKey(ev); got != want {
		t.Errorf("Nats-Msg-Id: got %q, want %q", got, want)
	}
	// Without a tracer provider the caller's context is passed on unchanged.
	if got := headerValue(m.Header, "traceparent"); got != parent {
		t.Errorf("traceparent: got %q, want %q", got, parent)
	}
	got, err := Decode(m.Data, m.Header)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID() != ev.ID() {
		t.Errorf("decoded id %q, want %q", got.ID(), ev.ID())
	}
}

func TestIngressStreamGone(t *testing.T) {
	env := startIngress(t, IngressConfig{PublishTimeout: 2e9})
	if err := env.tj.js.DeleteStream(t.Context(), "CRM_EVENTS"); err != nil {
		t.Fatal(err)
	}
	status, rep := env.post(t, structuredBody(t, newEvent(t, "evt-1", "deal.assigned", "Deals/1")),
		map[string]string{"Content-Type": contentTypeStructured})
	if status != http.StatusServiceUnavailable {
		t.Fatalf("status: got %d, want 503 (%+v)", status, rep)
	}
	if len(rep.Results) != 1 || rep.Results[0].Status != "failed" || rep.Results[0].Error == "" {
		t.Errorf("results: %+v", rep.Results)
	}
}

// A webhook that retries the same event three times reaches the handler once.
func TestIngressRetriedWebhookHandledOnce(t *testing.T) {
	env := startIngress(t, IngressConfig{BearerToken: testBearer})
	var got calls
	cfg := env.tj.config(HandlerFunc(func(ctx context.Context, ev event.Event) error {
		got.add(ctx, ev)
		return nil
	}))
	startConsumer(t, cfg)
	body := structuredBody(t, newEvent(t, "evt-1", "deal.assigned", "Deals/1"))
	h := map[string]string{"Content-Type": contentTypeStructured, "Authorization": "Bearer " + testBearer}
	for i := range 3 {
		if status, rep := env.post(t, body, h); status/100 != 2 {
			t.Fatalf("attempt %d: status %d: %+v", i, status, rep)
		}
	}
	waitFor(t, "event handled", func() bool { return got.count() >= 1 })
	waitFor(t, "stream settled", env.tj.settledAll(t, 1))
	if n := got.count(); n != 1 {
		t.Errorf("handled %d times, want 1", n)
	}
}
