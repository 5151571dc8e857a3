package consumer

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
)

// eventView is what the tests compare of a decoded event.
type eventView struct {
	SpecVersion, ID, Source, Type, Subject, DataSchema, DataContentType string
	Time                                                                time.Time
	Extensions                                                          map[string]any
	Data                                                                string
}

func view(ev event.Event) eventView {
	return eventView{
		SpecVersion: ev.SpecVersion(), ID: ev.ID(), Source: ev.Source(), Type: ev.Type(), Subject: ev.Subject(),
		DataSchema: ev.DataSchema(), DataContentType: ev.DataContentType(), Time: ev.Time(),
		Extensions: ev.Extensions(), Data: string(ev.Data()),
	}
}

func TestDecode(t *testing.T) {
	at := time.Date(2026, 11, 2, 9, 30, 0, 0, time.UTC)
	dealData := `{"deal_id":"D1","assignee":{"zoho_user_id":"42"}}`
	want := eventView{
		SpecVersion: "1.0", ID: "evt-1", Source: "/crm/deals", Type: "deal.assigned", Subject: "D1",
		DataContentType: "application/json", Time: at, Data: dealData,
	}
	withExt := want
	withExt.Extensions = map[string]any{"tenant": "acme corp"}

	structured := `{"specversion":"1.0","id":"evt-1","source":"/crm/deals","type":"deal.assigned","subject":"D1",` +
		`"time":"2026-11-02T09:30:00Z","datacontenttype":"application/json","data":` + dealData + `}`
	binaryHeaders := func(prefix string) nats.Header {
		return nats.Header{
			prefix + "specversion":     {"1.0"},
			prefix + "id":              {"evt-1"},
			prefix + "source":          {"/crm/deals"},
			prefix + "type":            {"deal.assigned"},
			prefix + "subject":         {"D1"},
			prefix + "time":            {"2026-11-02T09:30:00Z"},
			prefix + "datacontenttype": {"application/json"},
		}
	}
	canonical := nats.Header{
		"Ce-Specversion": {"1.0"}, "Ce-Id": {"evt-1"}, "Ce-Source": {"/crm/deals"}, "Ce-Type": {"deal.assigned"},
		"Ce-Subject": {"D1"}, "Ce-Time": {"2026-11-02T09:30:00Z"}, "Content-Type": {"application/json"},
	}
	upper := nats.Header{
		"CE-SPECVERSION": {"1.0"}, "CE-ID": {"evt-1"}, "CE-SOURCE": {"/crm/deals"}, "CE-TYPE": {"deal.assigned"},
		"CE-SUBJECT": {"D1"}, "CE-TIME": {"2026-11-02T09:30:00Z"}, "CONTENT-TYPE": {"application/json"},
	}
	percent := binaryHeaders("ce-")
	percent["ce-tenant"] = []string{"acme%20corp"}
	percentWant := withExt
	percentWant.Source = "/crm/deals"
	pctSource := binaryHeaders("ce-")
	pctSource["ce-source"] = []string{"%2Fcrm%2Fdeals"}
	pctSource["ce-id"] = []string{"evt%2D1"}

	tests := []struct {
		name   string
		data   string
		header nats.Header
		want   eventView
	}{
		{name: "structured with content type", data: structured,
			header: nats.Header{"content-type": {"application/cloudevents+json; charset=utf-8"}}, want: want},
		{name: "structured with canonical Content-Type", data: structured,
			header: nats.Header{"Content-Type": {"application/cloudevents+json"}}, want: want},
		{name: "structured leniently without headers", data: "  " + structured, want: want},
		{name: "binary lowercase", data: dealData, header: binaryHeaders("ce-"), want: want},
		{name: "binary Canonical", data: dealData, header: canonical, want: want},
		{name: "binary UPPER", data: dealData, header: upper, want: want},
		{name: "binary percent-encoded extension", data: dealData, header: percent, want: percentWant},
		{name: "binary percent-encoded attributes", data: dealData, header: pctSource, want: want},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := Decode([]byte(tt.data), tt.header)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if diff := cmp.Diff(tt.want, view(ev)); diff != "" {
				t.Errorf("decoded event mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeExamples(t *testing.T) {
	files, err := filepath.Glob("/work/shared/examples/events/*.json")
	if err != nil || len(files) == 0 {
		t.Skip("no shared example events on this machine")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			ev, err := Decode(b, nil)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if ev.ID() == "" || ev.Type() == "" {
				t.Errorf("decoded id %q type %q, want both set", ev.ID(), ev.Type())
			}
		})
	}
}

func TestDecodeInvalid(t *testing.T) {
	tests := []struct {
		name   string
		data   string
		header nats.Header
		mode   string
	}{
		{name: "plain json", data: `{"deal_id":"D1"}`},
		{name: "not json", data: `hello`},
		{name: "empty", data: ``},
		{name: "structured broken json", data: `{"specversion":"1.0",`,
			header: nats.Header{"content-type": {"application/cloudevents+json"}}, mode: "structured"},
		{name: "structured missing id", data: `{"specversion":"1.0","source":"/s","type":"t"}`, mode: "structured"},
		{name: "structured bad specversion", data: `{"specversion":"9.9","id":"1","source":"/s","type":"t"}`, mode: "structured"},
		{name: "binary missing specversion", header: nats.Header{"ce-id": {"1"}, "ce-source": {"/s"}, "ce-type": {"t"}}, mode: "binary"},
		{name: "binary bad specversion", header: nats.Header{"ce-specversion": {"2.0"}, "ce-id": {"1"}, "ce-source": {"/s"}, "ce-type": {"t"}}, mode: "binary"},
		{name: "binary missing type", header: nats.Header{"ce-specversion": {"1.0"}, "ce-id": {"1"}, "ce-source": {"/s"}}, mode: "binary"},
		{name: "binary bad time", header: nats.Header{"ce-specversion": {"1.0"}, "ce-id": {"1"}, "ce-source": {"/s"}, "ce-type": {"t"}, "ce-time": {"yesterday"}}, mode: "binary"},
		{name: "binary bad percent", header: nats.Header{"ce-specversion": {"1.0"}, "ce-id": {"100%"}, "ce-source": {"/s"}, "ce-type": {"t"}}, mode: "binary"},
		{name: "binary same attribute twice", header: nats.Header{"ce-specversion": {"1.0"}, "ce-id": {"1"}, "Ce-Id": {"2"}, "ce-source": {"/s"}, "ce-type": {"t"}}, mode: "binary"},
		{name: "binary bad extension name", header: nats.Header{"ce-specversion": {"1.0"}, "ce-id": {"1"}, "ce-source": {"/s"}, "ce-type": {"t"}, "ce-my_ext": {"x"}}, mode: "binary"},
		{name: "binary bad content type", header: nats.Header{"ce-specversion": {"1.0"}, "ce-id": {"1"}, "ce-source": {"/s"}, "ce-type": {"t"}, "content-type": {"not a media type"}}, mode: "binary"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode([]byte(tt.data), tt.header)
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("Decode error = %v, want a *DecodeError", err)
			}
			if de.Mode != tt.mode {
				t.Errorf("mode = %q, want %q (error %v)", de.Mode, tt.mode, err)
			}
			if de.Retryable() {
				t.Errorf("Retryable() = true, want false")
			}
			if got := decide(err, 1, policy{maxDeliver: 5}); got.kind != decisionDeadLetter {
				t.Errorf("decide = %v, want dead_letter on first delivery", got.kind)
			}
		})
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	ev := event.New()
	ev.SetID("id with spaces, \"quotes\", 100% and ünïcode")
	ev.SetSource("urn:crm:deals")
	ev.SetType("deal.assigned")
	ev.SetSubject("D1")
	ev.SetTime(time.Date(2026, 11, 2, 9, 30, 0, 123000000, time.UTC))
	ev.SetExtension("tenant", "acme corp")
	ev.SetExtension("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	if err := ev.SetData("application/json", map[string]any{"deal_id": "D1"}); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []Mode{ModeStructured, ModeBinary} {
		t.Run(mode.String(), func(t *testing.T) {
			msg, err := Encode("crm.events.deal", ev, mode)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			for k, vs := range msg.Header {
				for _, v := range vs {
					for _, r := range v {
						if r < 0x21 || r > 0x7e {
							t.Errorf("header %s value %q holds %q, want printable ASCII only", k, v, r)
						}
					}
				}
			}
			got, err := Decode(msg.Data, msg.Header)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if diff := cmp.Diff(view(ev), view(got)); diff != "" {
				t.Errorf("round trip mismatch (-want +got):\n%s", diff)
			}
		})
	}
	if _, err := Encode("s", ev, Mode(0)); err == nil {
		t.Error("Encode with the zero Mode: got nil error, want one")
	}
	if _, err := Encode("s", event.New(), ModeBinary); err == nil {
		t.Error("Encode of an invalid event: got nil error, want one")
	}
}

func TestEventKey(t *testing.T) {
	a := event.New()
	a.SetSource("/a")
	a.SetID("b/c")
	b := event.New()
	b.SetSource("/a/b")
	b.SetID("c")
	if EventKey(a) == EventKey(b) {
		t.Errorf("EventKey collides for (%q,%q) and (%q,%q)", a.Source(), a.ID(), b.Source(), b.ID())
	}
	if got := len(EventKey(a)); got != 64 {
		t.Errorf("len(EventKey) = %d, want 64 hex digits", got)
	}
}
