package consumer

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
)

// fuzzHeader parses "Name: value" lines into NATS headers.
func fuzzHeader(s string) nats.Header {
	h := nats.Header{}
	for line := range strings.SplitSeq(s, "\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok || name == "" {
			continue
		}
		h[name] = append(h[name], strings.TrimSpace(value))
	}
	return h
}

// FuzzDecode feeds arbitrary bodies and headers to Decode: it must not panic;
// every failure is a permanent *DecodeError (dead-lettered, never retried);
// every success is a valid event with a ledger key that survives an Encode
// and Decode round trip in both modes with its attributes intact (except
// that data claiming to be JSON must be JSON to be encoded structured). The seeds
// are the example events (structured, with and without a content type) and
// documented binary-mode header sets.
func FuzzDecode(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("..", "deploy", "examples", "events", "*.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, "Content-Type: application/cloudevents+json; charset=utf-8")
		f.Add(b, "") // lenient structured: a JSON body with specversion
	}
	body := []byte(`{"deal_id":"4150868000002515001","assignee":{"zoho_user_id":"4150868000001248015"},"amount":1200}`)
	f.Add(body, "ce-specversion: 1.0\nce-id: 7f9c\nce-source: urn:acme:crm\nce-type: deal.assigned\nContent-Type: application/json")
	f.Add(body, "Ce-Specversion: 1.0\nCe-Id: a%20b\nCe-Source: /crm/deals\nCe-Type: deal.assigned\nCe-Subject: Deals%2F4150868000002515001\nCe-Time: 2026-11-02T09:30:00Z\nCe-Traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\nce-datacontenttype: application/json")
	f.Add(body, "ce-specversion: 0.3\nce-id: 1\nce-source: /s\nce-type: t\nce-schemaurl: https://example.com/schema")
	f.Add([]byte(`{"specversion":"1.0","id":"1","source":"/s","type":"t","data_base64":"aGVsbG8="}`), "Content-Type: application/cloudevents+json")
	f.Add([]byte(`{"specversion":"1.0","id":"1","type":"t"}`), "Content-Type: application/cloudevents+json")
	f.Add([]byte(`grant user 7`), "")
	f.Add([]byte(`{"specversion":"1.0","id":"1","source":"/s","type":"t","data":{"a":[1,2]}`), "Content-Type: application/cloudevents+json")

	f.Fuzz(func(t *testing.T, data []byte, header string) {
		h := fuzzHeader(header)
		ev, err := Decode(data, h)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("Decode error %v (%T) is not a *DecodeError", err, err)
			}
			if de.Retryable() || de.ErrorCode() != "DECODE" || err.Error() == "" {
				t.Fatalf("DecodeError %+v: want permanent, code DECODE and a message", de)
			}
			return
		}
		if verr := ev.Validate(); verr != nil {
			t.Fatalf("Decode returned an invalid event: %v", verr)
		}
		if EventKey(ev) == "" {
			t.Fatalf("event %+v has no ledger key", ev)
		}
		for _, mode := range []Mode{ModeStructured, ModeBinary} {
			msg, err := Encode("crm.events.fuzz", ev, mode)
			if err != nil && mode == ModeStructured && strings.Contains(strings.ToLower(ev.DataContentType()), "json") && !json.Valid(ev.Data()) {
				// Binary mode takes a body on trust; data that claims to be
				// JSON and is not cannot go into the JSON format, and Encode
				// says so (the rules dead-letter such an event anyway).
				continue
			}
			if err != nil {
				t.Fatalf("mode %d: Encode a decoded event: %v", mode, err)
			}
			back, err := Decode(msg.Data, msg.Header)
			if err != nil {
				t.Fatalf("mode %d: Decode(Encode(ev)): %v\nevent: %v\nmessage: %q %v", mode, err, ev, msg.Data, msg.Header)
			}
			fuzzSameEvent(t, mode, ev, back)
		}
	})
}

// fuzzSameEvent checks that a round trip kept the attributes crmshare uses:
// the ledger key, type, subject, time and the data bytes.
func fuzzSameEvent(t *testing.T, mode Mode, want, got event.Event) {
	t.Helper()
	type attrs struct {
		Key, SpecVersion, Type, Subject, Time string
	}
	a := func(ev event.Event) attrs {
		return attrs{EventKey(ev), ev.SpecVersion(), ev.Type(), ev.Subject(), ev.Time().UTC().String()}
	}
	if a(want) != a(got) {
		t.Fatalf("mode %d: round trip changed the attributes:\n got %+v\nwant %+v", mode, a(got), a(want))
	}
	if !bytes.Equal(compactJSON(want.Data()), compactJSON(got.Data())) {
		t.Fatalf("mode %d: round trip changed the data:\n got %q\nwant %q", mode, got.Data(), want.Data())
	}
}

// compactJSON drops insignificant white space from JSON data (a structured
// event's data is re-encoded compactly); other data is returned as is.
func compactJSON(b []byte) []byte {
	// JSON data is compared by meaning: the structured format may re-escape
	// it (e.g. "&" as "\u0026") without changing what it says.
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil || dec.More() {
		return b
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if enc.Encode(v) != nil {
		return b
	}
	return bytes.TrimSuffix(out.Bytes(), []byte("\n"))
}
