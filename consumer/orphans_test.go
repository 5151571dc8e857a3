package consumer

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go/jetstream"
)

// TestOrphanedEventKeepsRecordOrder plays a replica killed while it held an
// event: the event was delivered and never settled, so the server redelivers
// it only after its ack wait. A new consumer must not apply the record's
// later events before that redelivery, while other records keep flowing.
func TestOrphanedEventKeepsRecordOrder(t *testing.T) {
	tj := startJS(t)
	var got calls
	h := keyedHandler{keys: subjectKeys, HandlerFunc: func(ctx context.Context, ev event.Event) error {
		got.add(ctx, ev)
		return nil
	}}
	cfg := tj.config(h)
	cfg.Consumer.AckWait = time.Second // the orphan comes back after about a second
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := c.Setup(t.Context()); err != nil {
		t.Fatalf("Setup: %v", err)
	}

	tj.publish(t, "crm.events.deal.assigned", newEvent(t, "a-0", "deal.assigned", "Deals/A"), ModeBinary)
	// The replica that dies: it fetches a-0 and never settles it.
	dead, err := tj.js.Consumer(t.Context(), "CRM_EVENTS", "crmshare")
	if err != nil {
		t.Fatal(err)
	}
	batch, err := dead.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	n := 0
	for m := range batch.Messages() {
		ev, err := DecodeMsg(m)
		if err != nil || ev.ID() != "a-0" {
			t.Fatalf("fetched %q (%v), want a-0", ev.ID(), err)
		}
		n++
	}
	if n != 1 {
		t.Fatalf("fetched %d messages, want 1", n)
	}
	tj.publish(t, "crm.events.deal.assigned", newEvent(t, "a-1", "deal.assigned", "Deals/A"), ModeBinary)
	tj.publish(t, "crm.events.deal.assigned", newEvent(t, "b-0", "deal.assigned", "Deals/B"), ModeBinary)

	ctx, cancel := context.WithCancel(t.Context())
	finished := make(chan error, 1)
	go func() { finished <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-finished
	})
	waitFor(t, "every event to be acked", tj.settledAll(t, 3))

	var order []string
	for _, cl := range got.list() {
		order = append(order, fmt.Sprintf("%s#%d", cl.id, cl.delivered))
	}
	var recordA []string
	for _, o := range order {
		if o[0] == 'a' {
			recordA = append(recordA, o)
		}
	}
	if diff := cmp.Diff([]string{"a-0#2", "a-1#1"}, recordA); diff != "" {
		t.Errorf("record A: handled %v; a later event overtook the orphan's redelivery (-want +got):\n%s", order, diff)
	}
	if !contains(order, "b-0#1") {
		t.Errorf("record B's event was not handled once on first delivery: %v", order)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestSubjectMatches(t *testing.T) {
	tests := []struct {
		subject, filter string
		want            bool
	}{
		{"crm.events.deal.assigned", "crm.events.>", true},
		{"crm.events", "crm.events.>", false},
		{"crm.events.deal.assigned", "crm.events.*", false},
		{"crm.events.deal", "crm.events.*", true},
		{"crm.events.deal.assigned", "crm.*.deal.assigned", true},
		{"crm.events.deal.assigned", "crm.events.deal.assigned", true},
		{"crm.events.deal.closed", "crm.events.deal.assigned", false},
		{"crm.events.deal", "crm.events.deal.assigned", false},
		{"other.events.deal", ">", true},
	}
	for _, tt := range tests {
		t.Run(tt.subject+" "+tt.filter, func(t *testing.T) {
			if got := subjectMatches(tt.subject, tt.filter); got != tt.want {
				t.Errorf("subjectMatches(%q, %q) = %t, want %t", tt.subject, tt.filter, got, tt.want)
			}
		})
	}
}
