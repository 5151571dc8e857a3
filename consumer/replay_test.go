package consumer

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/go-cmp/cmp"
)

// permanentErr and suspendErr script handler failures.
type permanentErr struct{}

func (permanentErr) Error() string     { return "refused" }
func (permanentErr) Retryable() bool   { return false }
func (permanentErr) ErrorCode() string { return "NO_PERMISSION" }

type suspendErr struct{}

func (suspendErr) Error() string { return "credentials rejected" }
func (suspendErr) Suspend() bool { return true }

func TestReplay(t *testing.T) {
	tj := startJS(t)
	var live calls
	run := startConsumer(t, tj.config(HandlerFunc(func(ctx context.Context, ev event.Event) error {
		live.add(ctx, ev)
		return nil
	})))
	for i := 1; i <= 3; i++ {
		tj.publish(t, "crm.events.deal.assigned", newEvent(t, eventID(i), "deal.assigned", "Deals/1"), ModeStructured)
	}
	waitFor(t, "live consumer settled", tj.settledAll(t, 3))
	if err := run.stop(t); err != nil {
		t.Fatal(err)
	}
	// Two events the service never saw (it is stopped).
	tj.publish(t, "crm.events.deal.closed", newEvent(t, eventID(4), "deal.closed", "Deals/1"), ModeStructured)
	tj.publish(t, "crm.events.deal.closed", newEvent(t, eventID(5), "deal.closed", "Deals/2"), ModeStructured)
	durable := tj.consumerInfo(t, "CRM_EVENTS", "crmshare")

	replay := func(t *testing.T, cfg ReplayConfig, h HandlerFunc) (ReplayStats, []string, error) {
		t.Helper()
		var got []string
		cfg.JS = tj.js
		cfg.BackOff = []time.Duration{time.Millisecond}
		cfg.MaxDeliver = 3
		cfg.Handler = HandlerFunc(func(ctx context.Context, ev event.Event) error {
			got = append(got, ev.ID())
			return h(ctx, ev)
		})
		st, err := Replay(t.Context(), cfg)
		return st, got, err
	}
	ok := func(context.Context, event.Event) error { return nil }

	t.Run("dry run skips applied events and records nothing", func(t *testing.T) {
		st, got, err := replay(t, ReplayConfig{StartSeq: 1, DryRun: true}, ok)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(got, []string{eventID(4), eventID(5)}); diff != "" {
			t.Errorf("handled (-got +want):\n%s", diff)
		}
		if st.Events != 5 || st.Skipped != 3 || st.Handled != 2 {
			t.Errorf("stats %+v", st)
		}
	})
	t.Run("filter and bounds", func(t *testing.T) {
		_, got, err := replay(t, ReplayConfig{StartSeq: 1, Force: true, DryRun: true, FilterSubjects: []string{"crm.events.deal.closed"}}, ok)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(got, []string{eventID(4), eventID(5)}); diff != "" {
			t.Errorf("handled (-got +want):\n%s", diff)
		}
		_, got, err = replay(t, ReplayConfig{StartSeq: 4, Force: true, DryRun: true}, ok)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(got, []string{eventID(4), eventID(5)}); diff != "" {
			t.Errorf("from seq 4 (-got +want):\n%s", diff)
		}
		_, got, err = replay(t, ReplayConfig{Since: time.Now().Add(time.Hour), Force: true, DryRun: true}, ok)
		if err != nil || len(got) != 0 {
			t.Errorf("since the future: handled %v, err %v", got, err)
		}
	})
	t.Run("suspend stops the replay", func(t *testing.T) {
		st, got, err := replay(t, ReplayConfig{StartSeq: 1}, func(context.Context, event.Event) error { return suspendErr{} })
		if !errors.Is(err, ErrReplaySuspended) {
			t.Fatalf("err %v, want ErrReplaySuspended", err)
		}
		if len(got) != 1 || st.DeadLettered != 0 {
			t.Errorf("handled %v, stats %+v: want one attempt and no dead letter", got, st)
		}
	})
	t.Run("permanent failure is dead-lettered, retryable retried", func(t *testing.T) {
		tries := 0
		st, _, err := replay(t, ReplayConfig{StartSeq: 1}, func(_ context.Context, ev event.Event) error {
			if ev.ID() == eventID(4) {
				return permanentErr{}
			}
			tries++
			if tries == 1 {
				return errors.New("flaky")
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if st.DeadLettered != 1 || st.Handled != 1 || st.Retries != 1 || st.Skipped != 3 {
			t.Errorf("stats %+v", st)
		}
		dls := tj.deadLetters(t)
		if len(dls) != 1 {
			t.Fatalf("dead letters: %d", len(dls))
		}
		h := dls[0].Header
		for k, want := range map[string]string{
			HeaderOriginalSubject: "crm.events.deal.closed", HeaderOriginalSequence: "4", HeaderZohoCode: "NO_PERMISSION",
			HeaderError: "permanent failure: refused", HeaderOriginalStream: "CRM_EVENTS",
		} {
			if got := h.Get(k); got != want {
				t.Errorf("%s: got %q, want %q", k, got, want)
			}
		}
		// The handled one is in the ledger now: a second replay skips it.
		st, got, err := replay(t, ReplayConfig{StartSeq: 5}, ok)
		if err != nil || len(got) != 0 || st.Skipped != 1 {
			t.Errorf("second replay: handled %v, stats %+v, err %v", got, st, err)
		}
	})
	t.Run("the durable consumer is untouched", func(t *testing.T) {
		after := tj.consumerInfo(t, "CRM_EVENTS", "crmshare")
		if after.AckFloor.Stream != durable.AckFloor.Stream || after.Delivered.Stream != durable.Delivered.Stream ||
			after.NumPending != durable.NumPending || after.NumAckPending != durable.NumAckPending {
			t.Errorf("durable changed: before %+v/%+v, after %+v/%+v", durable.AckFloor, durable.Delivered, after.AckFloor, after.Delivered)
		}
	})
}

func TestDeadLettersRedrive(t *testing.T) {
	tj := startJS(t)
	var fail atomic.Bool
	fail.Store(true)
	var got calls
	startConsumer(t, tj.config(HandlerFunc(func(ctx context.Context, ev event.Event) error {
		got.add(ctx, ev)
		if fail.Load() {
			return permanentErr{}
		}
		return nil
	})))
	ev := newEvent(t, eventID(1), "deal.assigned", "Deals/1")
	tj.publish(t, "crm.events.deal.assigned", ev, ModeBinary)
	waitFor(t, "dead letter", func() bool { return len(tj.deadLetters(t)) == 1 })
	d, err := OpenDeadLetters(t.Context(), tj.js, DeadLetterConfig{})
	if err != nil {
		t.Fatal(err)
	}
	list, err := d.List(t.Context())
	if err != nil || len(list) != 1 {
		t.Fatalf("list: %v, %v", list, err)
	}
	dl := list[0]
	if dl.EventID != ev.ID() || dl.EventType != "deal.assigned" || dl.ZohoCode != "NO_PERMISSION" || dl.OriginalSubject != "crm.events.deal.assigned" {
		t.Errorf("dead letter %+v", dl)
	}
	fail.Store(false) // the cause is fixed; the handler reads it only after the redrive
	res, err := d.Redrive(t.Context(), dl.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	if res.Duplicate || res.Stream != "CRM_EVENTS" || res.Sequence != 2 {
		t.Errorf("redrive %+v", res)
	}
	waitFor(t, "redriven event settled", tj.settledAll(t, 2))
	if n := got.count(); n != 2 {
		t.Errorf("handler calls: got %d, want 2 (the failure and the redrive)", n)
	}
	if n := len(tj.deadLetters(t)); n != 0 {
		t.Errorf("dead letters after redrive: %d", n)
	}
	if _, err := d.Get(t.Context(), dl.Sequence); !errors.Is(err, ErrDeadLetterNotFound) {
		t.Errorf("get after redrive: %v", err)
	}
}
