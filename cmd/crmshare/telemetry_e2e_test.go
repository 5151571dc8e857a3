package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/crmshare/crmshare/consumer"
	"github.com/crmshare/crmshare/zoho/zohoemu"
)

// TestE2ETraceTree follows single events through the running service and
// checks the span tree each leaves: the upstream producer's span (from
// traceparent) → "process <subject>" (consumer) → "share Deals" → the
// otelhttp client spans of the Zoho calls.
func TestE2ETraceTree(t *testing.T) {
	s := startE2E(t, e2eOptions{RecordSpans: true})

	tests := []struct {
		name         string
		deal, user   string
		carrier      string // where the upstream traceparent travels: "header" or "extension"
		wantDecision string
		wantOutcome  string
		wantZohoCode string // on some HTTP span; "" means none may carry one
		wantShares   []zohoemu.Entry
	}{
		{
			name: "granted, traceparent in the NATS header", deal: e2eDeal, user: e2eMaria, carrier: "header",
			wantDecision: "ack", wantOutcome: "applied",
			wantShares: []zohoemu.Entry{{Type: "users", ID: e2eMaria, Permission: "read_write"}},
		},
		{
			name: "granted, traceparent in the CloudEvents extension", deal: e2eDeal2, user: e2eSam, carrier: "extension",
			wantDecision: "ack", wantOutcome: "applied",
			wantShares: []zohoemu.Entry{
				{Type: "users", ID: e2eSam, Permission: "read_write"},
				{Type: "users", ID: e2eKen, Permission: "read_only"},
			},
		},
		{
			name: "refused by Zoho: no such record", deal: e2eMissingDeal, user: e2eMaria, carrier: "header",
			wantDecision: "dead_letter", wantOutcome: "error", wantZohoCode: "INVALID_DATA",
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			upstream := trace.NewSpanContext(trace.SpanContextConfig{
				TraceID:    mustTraceID(t, randomHex(t, 16)),
				SpanID:     mustSpanID(t, randomHex(t, 8)),
				TraceFlags: trace.FlagsSampled,
				Remote:     true,
			})
			traceparent := fmt.Sprintf("00-%s-%s-01", upstream.TraceID(), upstream.SpanID())

			ev := e2eEvent(fmt.Sprintf("trace-%d", i), "deal.assigned", map[string]any{"deal_id": tt.deal, "user_id": tt.user})
			if tt.carrier == "extension" {
				ev.SetExtension("traceparent", traceparent)
			}
			subject := s.subject(ev.Type())
			msg, err := consumer.Encode(subject, ev, consumer.ModeStructured)
			if err != nil {
				t.Fatal(err)
			}
			if tt.carrier == "header" {
				msg.Header.Set("traceparent", traceparent)
			}
			ack := s.publishMsg(t, msg)

			var spans []sdktrace.ReadOnlySpan
			waitFor(t, "consumer span ended", func() error {
				spans = spansOfTrace(s.spans.Ended(), upstream.TraceID())
				if !slices.ContainsFunc(spans, func(sp sdktrace.ReadOnlySpan) bool { return sp.SpanKind() == trace.SpanKindConsumer }) {
					return fmt.Errorf("%d spans of the trace, none of kind consumer", len(spans))
				}
				return nil
			})
			// The share and HTTP spans end before the consumer span, which ends
			// last, at settlement.

			proc := oneSpan(t, spans, func(sp sdktrace.ReadOnlySpan) bool { return sp.SpanKind() == trace.SpanKindConsumer })
			if got, want := proc.Name(), "process "+subject; got != want {
				t.Errorf("consumer span name = %q, want %q", got, want)
			}
			if got := proc.Parent(); !got.Equal(upstream) {
				t.Errorf("consumer span parent = %v, want the upstream span %v", got, upstream)
			}
			if got := proc.SpanContext().TraceID(); got != upstream.TraceID() {
				t.Errorf("consumer span trace id = %s, want %s", got, upstream.TraceID())
			}
			checkAttrs(t, proc, map[string]string{
				"messaging.system":                 "nats",
				"messaging.destination.name":       subject,
				"messaging.message.id":             ev.ID(),
				"messaging.nats.stream.sequence":   fmt.Sprint(ack.Sequence),
				"messaging.nats.message.delivered": "1",
				"cloudevents.event_id":             ev.ID(),
				"cloudevents.event_type":           "deal.assigned",
				"cloudevents.event_source":         "urn:e2e",
				"cloudevents.event_subject":        "Deals/" + tt.deal,
				"crmshare.decision":                tt.wantDecision,
			})

			share := oneSpan(t, spans, func(sp sdktrace.ReadOnlySpan) bool { return strings.HasPrefix(sp.Name(), "share ") })
			if got, want := share.Name(), "share Deals"; got != want {
				t.Errorf("share span name = %q, want %q", got, want)
			}
			if got, want := share.Parent().SpanID(), proc.SpanContext().SpanID(); got != want {
				t.Errorf("share span parent = %s, want the consumer span %s", got, want)
			}
			checkAttrs(t, share, map[string]string{
				"crmshare.rule":            "grant-deal",
				"crmshare.action":          "grant",
				"crmshare.module":          "Deals",
				"crmshare.record_id":       tt.deal,
				"crmshare.recipient_count": "1",
				"crmshare.outcome":         tt.wantOutcome,
			})

			var httpSpans []sdktrace.ReadOnlySpan
			for _, sp := range spans {
				switch {
				case sp.SpanContext().SpanID() == proc.SpanContext().SpanID(), sp.SpanContext().SpanID() == share.SpanContext().SpanID():
				case sp.SpanKind() == trace.SpanKindClient:
					httpSpans = append(httpSpans, sp)
					if got, want := sp.Parent().SpanID(), share.SpanContext().SpanID(); got != want {
						t.Errorf("HTTP span %q (%s) parent = %s, want the share span %s", sp.Name(), attrOf(sp, "url.full"), got, want)
					}
				default:
					t.Errorf("unexpected span %q (kind %v) in the trace", sp.Name(), sp.SpanKind())
				}
			}
			if len(httpSpans) == 0 {
				t.Fatal("no HTTP client spans under the share span")
			}
			var gotCodes []string
			for _, sp := range httpSpans {
				if !strings.HasPrefix(sp.Name(), "zoho ") {
					t.Errorf("HTTP span name = %q, want zoho <method>", sp.Name())
				}
				if attrOf(sp, "http.request.method") == "" || attrOf(sp, "http.response.status_code") == "" {
					t.Errorf("HTTP span %q lacks method or status: %v", sp.Name(), sp.Attributes())
				}
				if code := attrOf(sp, "zoho.code"); code != "" {
					gotCodes = append(gotCodes, code)
					if sp.Status().Code != codes.Error {
						t.Errorf("HTTP span %q with zoho.code %s has status %v, want Error", sp.Name(), code, sp.Status().Code)
					}
				}
			}

			if tt.wantZohoCode == "" {
				if len(gotCodes) > 0 {
					t.Errorf("zoho.code on HTTP spans of a clean run: %q", gotCodes)
				}
				for _, sp := range []sdktrace.ReadOnlySpan{proc, share} {
					if sp.Status().Code == codes.Error || len(errorEvents(sp)) > 0 {
						t.Errorf("span %q: status %v, %d error events; want no error", sp.Name(), sp.Status(), len(errorEvents(sp)))
					}
				}
				if diff := cmp.Diff(s.emu.Shares("Deals", tt.deal), tt.wantShares); diff != "" {
					t.Errorf("shares of Deals/%s (-got +want):\n%s", tt.deal, diff)
				}
				return
			}
			if !slices.Contains(gotCodes, tt.wantZohoCode) {
				t.Errorf("zoho.code on HTTP spans = %q, want one %s", gotCodes, tt.wantZohoCode)
			}
			for _, sp := range []sdktrace.ReadOnlySpan{proc, share} {
				if sp.Status().Code != codes.Error || sp.Status().Description == "" {
					t.Errorf("span %q status = %+v, want Error with a description", sp.Name(), sp.Status())
				}
				evs := errorEvents(sp)
				if len(evs) == 0 {
					t.Errorf("span %q recorded no exception event", sp.Name())
				}
				for _, e := range evs {
					if msg := eventAttr(e, "exception.message"); !strings.Contains(msg, tt.wantZohoCode) {
						t.Errorf("span %q exception.message = %q, want it to name %s", sp.Name(), msg, tt.wantZohoCode)
					}
				}
			}
			if got := attrOf(proc, "error.type"); got != tt.wantZohoCode {
				t.Errorf("consumer span error.type = %q, want %q", got, tt.wantZohoCode)
			}
		})
	}
}

// TestE2EMetrics runs a mixed flow and reads the outcome back from a real
// scrape of /metrics, then checks /healthz and /readyz, including /readyz
// turning 503 while Zoho rejects the refresh token and 200 once it is fixed.
func TestE2EMetrics(t *testing.T) {
	s := startE2E(t, e2eOptions{})

	if status, body := s.get(t, "/healthz"); status != http.StatusOK {
		t.Errorf("GET /healthz = %d %q, want 200", status, body)
	}
	waitFor(t, "/readyz 200", func() error {
		if status, body := s.get(t, "/readyz"); status != http.StatusOK {
			return fmt.Errorf("%d %s", status, body)
		}
		return nil
	})

	grant := func(id, deal, user string) *nats.Msg {
		return s.eventMsg(t, e2eEvent(id, "deal.assigned", map[string]any{"deal_id": deal, "user_id": user}))
	}
	revoke := func(id, deal, user string) *nats.Msg {
		return s.eventMsg(t, e2eEvent(id, "deal.unassigned", map[string]any{"deal_id": deal, "user_id": user}))
	}
	for _, m := range []*nats.Msg{
		grant("m-1", e2eDeal, e2eMaria),
		grant("m-2", e2eDeal, e2eSam),
		revoke("m-3", e2eDeal, e2eMaria),
		grant("m-4", e2eDeal2, e2eMaria),
		grant("m-5", e2eMissingDeal, e2eMaria),                                  // Zoho refuses: dead letter
		{Subject: s.subject("deal.assigned"), Data: []byte("not a cloudevent")}, // undecodable: dead letter
	} {
		s.publishMsg(t, m)
	}
	// The access token dies; the next call must refresh it and carry on.
	s.waitSettled(t, 6)
	s.emu.ExpireTokens()
	ack := s.publishMsg(t, grant("m-7", e2eDeal, e2eKen))
	s.waitSettled(t, ack.Sequence)

	m := s.scrape(t)
	checkMetric := func(name string, labels map[string]string, want float64) {
		t.Helper()
		if got := m.value(name, labels); got != want {
			t.Errorf("%s%v = %v, want %v; series:\n%s", name, labels, got, want, strings.Join(m.series(name), "\n"))
		}
	}
	checkMetric("crmshare_events_total", map[string]string{"decision": "ack", "type": "deal.assigned"}, 4)
	checkMetric("crmshare_events_total", map[string]string{"decision": "ack", "type": "deal.unassigned"}, 1)
	checkMetric("crmshare_events_total", map[string]string{"decision": "dead_letter", "type": "deal.assigned"}, 1)
	checkMetric("crmshare_events_total", map[string]string{"decision": "dead_letter", "type": "undecodable"}, 1)
	checkMetric("crmshare_events_total", nil, 7)
	checkMetric("crmshare_dead_letters_total", map[string]string{"reason": "permanent"}, 1)
	checkMetric("crmshare_dead_letters_total", map[string]string{"reason": "decode"}, 1)
	checkMetric("crmshare_intents_total", map[string]string{"action": "grant", "outcome": "applied"}, 4)
	checkMetric("crmshare_intents_total", map[string]string{"action": "revoke", "outcome": "applied"}, 1)
	checkMetric("crmshare_intents_total", map[string]string{"action": "grant", "outcome": "error"}, 1)
	// The revoke read the record and rewrote it without Maria; the grants
	// are one POST each, but m-1 and m-2 may have gone out together.
	checkMetric("crmshare_share_calls_total", map[string]string{"action": "revoke", "method": "GET"}, 1)
	checkMetric("crmshare_share_calls_total", map[string]string{"action": "revoke", "method": "PUT"}, 1)
	if got := m.value("crmshare_share_calls_total", map[string]string{"action": "grant", "method": "POST"}); got != 4 && got != 5 {
		t.Errorf("crmshare_share_calls_total{action=grant,method=POST} = %v, want 4 or 5; series:\n%s", got, strings.Join(m.series("crmshare_share_calls_total"), "\n"))
	}
	checkMetric("crmshare_event_duration_seconds_count", map[string]string{"decision": "ack"}, 5)
	checkMetric("crmshare_event_duration_seconds_count", map[string]string{"decision": "dead_letter"}, 2)
	checkMetric("crmshare_event_duration_seconds_bucket", map[string]string{"decision": "ack", "le": "+Inf"}, 5)
	if got := m.value("crmshare_event_duration_seconds_sum", nil); got <= 0 {
		t.Errorf("crmshare_event_duration_seconds_sum = %v, want > 0", got)
	}
	if got := len(s.deadLetters(t)); got != 2 {
		t.Errorf("dead-letter stream holds %d messages, want 2", got)
	}

	// Every CRM request the emulator answered shows up under its method and
	// status, and the refusal under its Zoho code.
	emuReqs := s.emu.Requests()
	wantByMS := map[string]float64{}
	var crmTotal float64
	for route, n := range emuReqs.ByRoute {
		f := strings.Fields(route) // "METHOD pattern status"
		if len(f) != 3 || !strings.HasPrefix(f[1], "/crm/") {
			continue
		}
		wantByMS[f[0]+" "+f[2]] += float64(n)
		crmTotal += float64(n)
	}
	gotByMS := map[string]float64{}
	for _, smp := range m {
		if smp.name == "crmshare_zoho_requests_total" {
			gotByMS[smp.labels["method"]+" "+smp.labels["status"]] += smp.value
		}
	}
	if diff := cmp.Diff(gotByMS, wantByMS); diff != "" {
		t.Errorf("crmshare_zoho_requests_total by method and status (-got +want the emulator's counts):\n%s", diff)
	}
	if crmTotal < 6 {
		t.Errorf("the emulator answered %v CRM requests, want at least one per applied intent and refusal", crmTotal)
	}
	checkMetric("crmshare_zoho_requests_total", map[string]string{"code": "INVALID_DATA"}, float64(emuReqs.ByCode["INVALID_DATA"]))
	checkMetric("crmshare_zoho_requests_total", map[string]string{"code": "INVALID_TOKEN", "status": "401"}, float64(emuReqs.ByCode["INVALID_TOKEN"]))
	if emuReqs.ByCode["INVALID_DATA"] == 0 || emuReqs.ByCode["INVALID_TOKEN"] == 0 {
		t.Errorf("emulator codes = %v, want INVALID_DATA (the refusal) and INVALID_TOKEN (the expired token)", emuReqs.ByCode)
	}
	checkMetric("crmshare_zoho_request_duration_seconds_count", nil, crmTotal)
	checkMetric("crmshare_zoho_request_duration_seconds_bucket", map[string]string{"le": "+Inf"}, crmTotal)
	if got := m.value("crmshare_zoho_request_duration_seconds_sum", nil); got <= 0 {
		t.Errorf("crmshare_zoho_request_duration_seconds_sum = %v, want > 0", got)
	}
	minted := s.emu.TokenRefreshes()
	if minted < 2 {
		t.Errorf("emulator minted %d tokens, want at least 2 (first token, then after expiry)", minted)
	}
	checkMetric("crmshare_zoho_token_refreshes_total", map[string]string{"result": "ok"}, float64(minted))

	// Zoho revokes the refresh token: the next event is refused credentials,
	// consumption pauses and /readyz says so. Nothing is dead-lettered.
	s.emu.RevokeRefreshToken(s.refreshToken)
	ack = s.publishMsg(t, grant("m-8", e2eDeal, e2eMaria))
	waitFor(t, "/readyz 503 with the refresh token revoked", func() error {
		status, body := s.get(t, "/readyz")
		if status != http.StatusServiceUnavailable {
			return fmt.Errorf("%d %s", status, body)
		}
		if !strings.Contains(body, "zoho") {
			return fmt.Errorf("503 body does not name the zoho check: %s", body)
		}
		return nil
	})
	if status, _ := s.get(t, "/healthz"); status != http.StatusOK {
		t.Errorf("GET /healthz with credentials rejected = %d, want 200 (alive, just not ready)", status)
	}
	if got := m.value("crmshare_zoho_token_refreshes_total", map[string]string{"result": "rejected"}); got != 0 {
		t.Errorf("rejected refreshes before the revocation = %v, want 0", got)
	}
	if got := s.scrape(t).value("crmshare_zoho_token_refreshes_total", map[string]string{"result": "rejected"}); got < 1 {
		t.Errorf("crmshare_zoho_token_refreshes_total{result=rejected} = %v, want at least 1", got)
	}

	// The operator issues the client again (same refresh token, re-seeded):
	// the probe succeeds, /readyz is 200 and the held event is applied.
	seed, err := zohoemu.DemoSeed()
	if err != nil {
		t.Fatal(err)
	}
	reseed := withE2EClient(t, seed, s.clientSecret, s.refreshToken)
	if err := s.emu.LoadSeed(&zohoemu.Seed{Clients: reseed.Clients[:1]}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "/readyz 200 after re-seeding", func() error {
		if status, body := s.get(t, "/readyz"); status != http.StatusOK {
			return fmt.Errorf("%d %s", status, body)
		}
		return nil
	})
	s.waitSettled(t, ack.Sequence)
	m = s.scrape(t)
	checkMetric("crmshare_events_total", map[string]string{"decision": "ack", "type": "deal.assigned"}, 5)
	checkMetric("crmshare_events_total", map[string]string{"decision": "dead_letter"}, 2)
	if got := m.value("crmshare_events_total", map[string]string{"decision": "nak"}); got < 1 {
		t.Errorf("crmshare_events_total{decision=nak} = %v, want at least 1 (the event held while suspended)", got)
	}
	if got := len(s.deadLetters(t)); got != 2 {
		t.Errorf("dead-letter stream holds %d messages after the revocation, want still 2", got)
	}
	if diff := cmp.Diff(s.emu.Shares("Deals", e2eDeal), []zohoemu.Entry{ // sorted by ID
		{Type: "users", ID: e2eSam, Permission: "read_write"},
		{Type: "users", ID: e2eKen, Permission: "read_write"},
		{Type: "users", ID: e2eMaria, Permission: "read_write"},
	}); diff != "" {
		t.Errorf("shares of Deals/%s (-got +want):\n%s", e2eDeal, diff)
	}
}

// TestE2ENoSecretsLeak drives grants, a revoke, an expired access token, a
// revoked refresh token and dead letters through a service logging at debug
// and tracing to memory and stdout, then looks for every credential in
// everything the service wrote or answered.
func TestE2ENoSecretsLeak(t *testing.T) {
	s := startE2E(t, e2eOptions{RecordSpans: true, Traces: "stdout", LogLevel: "debug"})
	grant := func(id, deal, user string) *nats.Msg {
		return s.eventMsg(t, e2eEvent(id, "deal.assigned", map[string]any{"deal_id": deal, "user_id": user}))
	}

	var readyBodies []string
	s.publishMsg(t, grant("s-1", e2eDeal, e2eMaria))
	s.publishMsg(t, s.eventMsg(t, e2eEvent("s-2", "deal.unassigned", map[string]any{"deal_id": e2eDeal, "user_id": e2eMaria})))
	s.publishMsg(t, grant("s-3", e2eMissingDeal, e2eSam)) // dead letter, Zoho's error in its header
	s.waitSettled(t, s.publishMsg(t, &nats.Msg{Subject: s.subject("deal.assigned"), Data: []byte(`{"specversion":"1.0"`)}).Sequence)

	s.emu.ExpireTokens()
	s.waitSettled(t, s.publishMsg(t, grant("s-5", e2eDeal, e2eSam)).Sequence)

	s.emu.RevokeRefreshToken(s.refreshToken)
	held := s.publishMsg(t, grant("s-6", e2eDeal2, e2eMaria))
	waitFor(t, "/readyz 503", func() error {
		status, body := s.get(t, "/readyz")
		if status != http.StatusServiceUnavailable {
			return fmt.Errorf("%d %s", status, body)
		}
		readyBodies = append(readyBodies, body)
		return nil
	})
	seed, err := zohoemu.DemoSeed()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.emu.LoadSeed(&zohoemu.Seed{Clients: withE2EClient(t, seed, s.clientSecret, s.refreshToken).Clients[:1]}); err != nil {
		t.Fatal(err)
	}
	s.waitSettled(t, held.Sequence)

	_, metricsBody := s.get(t, "/metrics")
	deadLetters := s.deadLetters(t)
	// Stop as SIGTERM would, so the stdout exporter flushes and the shutdown
	// lines are written too.
	s.stop()

	tokens := s.emu.IssuedTokens()
	if len(tokens) < 3 {
		t.Fatalf("emulator issued %d access tokens, want at least 3 (first, after expiry, after re-seeding)", len(tokens))
	}
	secrets := map[string]string{"client secret": s.clientSecret, "refresh token": s.refreshToken}
	for i, tok := range tokens {
		secrets[fmt.Sprintf("access token %d", i)] = tok
		// "1000.<hex>.<hex>": each random part alone is a leak too.
		for j, part := range strings.Split(tok, ".") {
			if len(part) >= 16 {
				secrets[fmt.Sprintf("access token %d part %d", i, j)] = part
			}
		}
	}

	haystacks := map[string][]string{
		"log line":      s.logs.lines(),
		"stdout trace":  s.traces.lines(),
		"/readyz reply": readyBodies,
		"/metrics":      {metricsBody},
	}
	for _, sp := range s.spans.Ended() {
		haystacks["span"] = append(haystacks["span"], spanText(sp))
	}
	for _, dl := range deadLetters {
		haystacks["dead letter"] = append(haystacks["dead letter"], fmt.Sprintf("%s %v %s", dl.Subject, dl.Header, dl.Data))
	}

	// The flow really happened, and each place really holds text to search.
	if len(deadLetters) != 2 {
		t.Errorf("dead letters = %d, want 2", len(deadLetters))
	}
	for where, hs := range haystacks {
		if len(hs) == 0 {
			t.Errorf("nothing to search in %s", where)
		}
	}
	logs := s.logs.String()
	for _, want := range []string{`"level":"DEBUG"`, "INVALID_DATA", "invalid_code", "consumption suspended", "consumption resumed", "crmshare stopping"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs never mention %q: the flow did not run as planned", want)
		}
	}
	for _, l := range s.logLines(t) {
		if l["msg"] == nil {
			t.Errorf("log line without msg: %v", l)
		}
	}

	for what, secret := range secrets {
		for where, hs := range haystacks {
			for _, h := range hs {
				if strings.Contains(h, secret) {
					t.Errorf("%s found in a %s: %s", what, where, h)
				}
			}
		}
	}
}

// eventMsg encodes ev in structured mode for its type's subject.
func (s *e2eService) eventMsg(tb testing.TB, ev event.Event) *nats.Msg {
	tb.Helper()
	msg, err := consumer.Encode(s.subject(ev.Type()), ev, consumer.ModeStructured)
	if err != nil {
		tb.Fatal(err)
	}
	return msg
}

// spansOfTrace returns the spans of one trace.
func spansOfTrace(spans []sdktrace.ReadOnlySpan, id trace.TraceID) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, sp := range spans {
		if sp.SpanContext().TraceID() == id {
			out = append(out, sp)
		}
	}
	return out
}

// oneSpan returns the one span matching f, failing the test unless there is exactly one.
func oneSpan(tb testing.TB, spans []sdktrace.ReadOnlySpan, f func(sdktrace.ReadOnlySpan) bool) sdktrace.ReadOnlySpan {
	tb.Helper()
	var found []sdktrace.ReadOnlySpan
	var names []string
	for _, sp := range spans {
		names = append(names, sp.Name())
		if f(sp) {
			found = append(found, sp)
		}
	}
	if len(found) != 1 {
		tb.Fatalf("%d matching spans, want 1; spans of the trace: %q", len(found), names)
	}
	return found[0]
}

// checkAttrs compares the span's attributes named in want, as strings.
func checkAttrs(tb testing.TB, sp sdktrace.ReadOnlySpan, want map[string]string) {
	tb.Helper()
	got := map[string]string{}
	for _, kv := range sp.Attributes() {
		if _, ok := want[string(kv.Key)]; ok {
			got[string(kv.Key)] = kv.Value.Emit()
		}
	}
	if diff := cmp.Diff(got, want); diff != "" {
		tb.Errorf("span %q attributes (-got +want):\n%s", sp.Name(), diff)
	}
}

func attrOf(sp sdktrace.ReadOnlySpan, key string) string {
	for _, kv := range sp.Attributes() {
		if string(kv.Key) == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

// errorEvents returns the span's recorded errors (RecordError's "exception" events).
func errorEvents(sp sdktrace.ReadOnlySpan) []sdktrace.Event {
	var out []sdktrace.Event
	for _, e := range sp.Events() {
		if e.Name == "exception" {
			out = append(out, e)
		}
	}
	return out
}

func eventAttr(e sdktrace.Event, key string) string {
	for _, kv := range e.Attributes {
		if string(kv.Key) == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

// spanText is everything a span carries as text: name, status, attributes,
// events, links and resource.
func spanText(sp sdktrace.ReadOnlySpan) string {
	var b strings.Builder
	kvs := func(attrs []attribute.KeyValue) {
		for _, kv := range attrs {
			fmt.Fprintf(&b, " %s=%s", kv.Key, kv.Value.Emit())
		}
	}
	fmt.Fprintf(&b, "%s status=%v %q", sp.Name(), sp.Status().Code, sp.Status().Description)
	kvs(sp.Attributes())
	for _, e := range sp.Events() {
		fmt.Fprintf(&b, " event %s:", e.Name)
		kvs(e.Attributes)
	}
	for _, l := range sp.Links() {
		kvs(l.Attributes)
	}
	if r := sp.Resource(); r != nil {
		kvs(r.Attributes())
	}
	return b.String()
}

func mustTraceID(tb testing.TB, h string) trace.TraceID {
	tb.Helper()
	id, err := trace.TraceIDFromHex(h)
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

func mustSpanID(tb testing.TB, h string) trace.SpanID {
	tb.Helper()
	id, err := trace.SpanIDFromHex(h)
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

// BenchmarkE2ETracingOverhead measures the consumer end to end, publish to
// ack, with tracing off (traces: none, so a noop tracer provider) and on (the
// SDK sampling every span into a batch processor whose exporter discards
// them), in the same process. One op is one event, a first-time grant to a
// record of its own, so every event makes the same Zoho calls; ns/op is the
// cost per event. Compare the two; keep -benchtime small (e.g. 300x) on a
// shared machine.
func BenchmarkE2ETracingOverhead(b *testing.B) {
	for _, bc := range []struct {
		name  string
		procs func() []sdktrace.SpanProcessor
	}{
		{"traces=none", func() []sdktrace.SpanProcessor { return nil }},
		{"traces=sdk", func() []sdktrace.SpanProcessor {
			return []sdktrace.SpanProcessor{sdktrace.NewBatchSpanProcessor(discardExporter{})}
		}},
	} {
		seed, err := zohoemu.DemoSeed()
		if err != nil {
			b.Fatal(err)
		}
		seed.Org.DailyCredits = 0 // unlimited, whatever b.N grows to
		// One service per mode, shared by the rounds of its sub-benchmark.
		s := startE2E(b, e2eOptions{Seed: seed, LogLevel: "warn", Concurrency: 16, SpanProcessors: bc.procs()})
		var records int // records loaded so far; each round uses new ones
		b.Run(bc.name, func(b *testing.B) {
			recs := make([]zohoemu.Record, b.N)
			msgs := make([]*nats.Msg, b.N)
			for i := range recs {
				id := fmt.Sprint(4150868000090000000 + records + i)
				recs[i] = zohoemu.Record{Module: "Deals", ID: id, Name: "bench " + id, Owner: e2eIntegration}
				msgs[i] = s.eventMsg(b, e2eEvent(fmt.Sprintf("%s-%s", bc.name, id), "deal.assigned",
					map[string]any{"deal_id": id, "user_id": e2eMaria}))
			}
			records += b.N
			if err := s.emu.LoadSeed(&zohoemu.Seed{Records: recs}); err != nil {
				b.Fatal(err)
			}
			// Allocations count the whole process (server and emulator too),
			// the same in both modes, so their difference is tracing's.
			b.ReportAllocs()
			b.ResetTimer()
			var last jetstream.PubAckFuture
			for i, m := range msgs {
				if last, err = s.js.PublishMsgAsync(m); err != nil {
					b.Fatal(err)
				}
				if i%1000 == 999 { // stay under the async publish window
					select {
					case <-s.js.PublishAsyncComplete():
					case <-time.After(e2eTimeout):
						b.Fatal("async publishes not acknowledged")
					}
				}
			}
			select {
			case ack := <-last.Ok():
				s.waitSettled(b, ack.Sequence)
			case err := <-last.Err():
				b.Fatal(err)
			}
			b.StopTimer()
			if got := len(s.emu.Shares("Deals", recs[len(recs)-1].ID)); got != 1 {
				b.Fatalf("the last record has %d shares, want 1", got)
			}
		})
	}
}

// discardExporter drops every span: the benchmark measures making spans, not
// shipping them.
type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }
