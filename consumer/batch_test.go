package consumer

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/go-cmp/cmp"
)

// attempt is one handling of an event as a handler saw it.
type attempt struct {
	ID        string
	Delivered uint64
}

// attempts records handler calls in the order they happened.
type attempts struct {
	mu   sync.Mutex
	list []attempt
	runs [][]string
}

func (a *attempts) add(ctx context.Context, evs ...event.Event) {
	d, _ := DeliveryFrom(ctx)
	a.mu.Lock()
	defer a.mu.Unlock()
	var run []string
	for i, ev := range evs {
		n := d.NumDelivered
		if i > 0 {
			n = 0 // a run carries the first event's delivery only
		}
		a.list = append(a.list, attempt{ID: ev.ID(), Delivered: n})
		run = append(run, ev.ID())
	}
	a.runs = append(a.runs, run)
}

func (a *attempts) snapshot() ([]attempt, [][]string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]attempt(nil), a.list...), append([][]string(nil), a.runs...)
}

// byPrefix keeps the attempts of events whose ID starts with p.
func byPrefix(list []attempt, p string) []attempt {
	var out []attempt
	for _, a := range list {
		if strings.HasPrefix(a.ID, p) {
			out = append(out, a)
		}
	}
	return out
}

// subjectKeys orders events by their subject.
func subjectKeys(ev event.Event) []string { return []string{ev.Subject()} }

func TestFenceKeepsRecordOrderAcrossRetry(t *testing.T) {
	tj := startJS(t)
	var got attempts
	h := keyedHandler{keys: subjectKeys, HandlerFunc: func(ctx context.Context, ev event.Event) error {
		got.add(ctx, ev)
		if d, _ := DeliveryFrom(ctx); ev.ID() == "a-0" && d.NumDelivered == 1 {
			// Long enough for the other record's events to go through first.
			return &testError{code: "INTERNAL_ERROR", delay: time.Second}
		}
		return nil
	}}
	cfg := tj.config(h)
	startConsumer(t, cfg)
	ids := []struct{ id, record string }{
		{"a-0", "Deals/A"}, {"a-1", "Deals/A"},
		{"b-0", "Deals/B"}, {"b-1", "Deals/B"}, {"b-2", "Deals/B"}, {"b-3", "Deals/B"},
		{"a-2", "Deals/A"},
	}
	for _, e := range ids {
		tj.publish(t, "crm.events.deal.assigned", newEvent(t, e.id, "deal.assigned", e.record), ModeBinary)
	}
	waitFor(t, "every event to be acked", tj.settledAll(t, uint64(len(ids))))

	list, _ := got.snapshot()
	want := []attempt{{"a-0", 1}, {"a-0", 2}, {"a-1", 1}, {"a-2", 1}}
	if diff := cmp.Diff(want, byPrefix(list, "a-")); diff != "" {
		t.Errorf("record A handled out of stream order or its later events were naked (-want +got):\n%s", diff)
	}
	// The other record kept flowing while A was fenced: all of B came before
	// a-0's redelivery.
	retry := -1
	for i, a := range list {
		if a == (attempt{"a-0", 2}) {
			retry = i
		}
	}
	for i, a := range list {
		if strings.HasPrefix(a.ID, "b-") && i > retry {
			t.Errorf("%s handled at position %d, after a-0's redelivery at %d: the fence held up another record", a.ID, i, retry)
		}
	}
	if n := len(tj.deadLetters(t)); n != 0 {
		t.Errorf("dead letters = %d, want 0", n)
	}
}

// coalescer is a keyed handler that also takes runs.
type coalescer struct {
	keyedHandler
	run func(ctx context.Context, evs []event.Event) []error
}

func (c coalescer) HandleRun(ctx context.Context, evs []event.Event) []error { return c.run(ctx, evs) }

type deferredErr struct{}

func (deferredErr) Error() string   { return "deferred behind an earlier event" }
func (deferredErr) Deferred() bool  { return true }
func (deferredErr) Retryable() bool { return true }

func TestCoalescerGetsWaitingRunAndDefers(t *testing.T) {
	tj := startJS(t)
	var got attempts
	release, started := make(chan struct{}), make(chan struct{})
	var once sync.Once
	failedRun := false
	h := coalescer{
		keyedHandler: keyedHandler{keys: subjectKeys, HandlerFunc: func(ctx context.Context, ev event.Event) error {
			got.add(ctx, ev)
			if ev.ID() == "r-0" {
				close(started)
				select { // the rest of the record's events pile up behind it
				case <-release:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		}},
		run: func(ctx context.Context, evs []event.Event) []error {
			got.add(ctx, evs...)
			errs := make([]error, len(evs))
			once.Do(func() {
				// The first run's first event fails; the handler does not
				// attempt the rest.
				failedRun = true
				errs[0] = &testError{code: "INTERNAL_ERROR"}
				for i := 1; i < len(errs); i++ {
					errs[i] = fmt.Errorf("grant: %w", deferredErr{})
				}
			})
			return errs
		},
	}
	cfg := tj.config(h)
	r := startConsumer(t, cfg)
	const n = 5
	for i := range n {
		tj.publish(t, "crm.events.deal.assigned", newEvent(t, fmt.Sprintf("r-%d", i), "deal.assigned", "Deals/R"), ModeBinary)
		if i == 0 {
			select { // r-0 runs alone; the rest arrive while it runs
			case <-started:
			case <-time.After(waitLimit):
				t.Fatal("r-0 was not handled")
			}
		}
	}
	tj.publish(t, "crm.events.deal.assigned", newEvent(t, "other-0", "deal.assigned", "Deals/O"), ModeBinary)
	waitFor(t, "the record's events to be admitted", func() bool {
		r.c.mu.Lock()
		sched := r.c.sched
		r.c.mu.Unlock()
		if sched == nil {
			return false
		}
		held := 0
		for _, j := range sched.snapshot() {
			if strings.HasPrefix(j.ev.ID(), "r-") {
				held++
			}
		}
		return held == n
	})
	close(release)
	waitFor(t, "every event to be acked", tj.settledAll(t, n+1))

	list, runs := got.snapshot()
	wantRuns := [][]string{
		{"r-0"},
		{"r-1", "r-2", "r-3", "r-4"}, // r-1 fails, the rest are deferred
		{"r-1"},                      // its redelivery runs alone: the rest wait behind its fence
		{"r-2", "r-3", "r-4"},
	}
	var rRuns [][]string
	for _, r := range runs {
		if strings.HasPrefix(r[0], "r-") {
			rRuns = append(rRuns, r)
		}
	}
	if diff := cmp.Diff(wantRuns, rRuns); diff != "" {
		t.Errorf("runs handed to the handler (-want +got):\n%s", diff)
	}
	if !failedRun {
		t.Error("no run was handed to HandleRun")
	}
	var delivered []attempt
	for _, a := range byPrefix(list, "r-") {
		if a.Delivered > 0 {
			delivered = append(delivered, a)
		}
	}
	wantDelivered := []attempt{{"r-0", 1}, {"r-1", 1}, {"r-1", 2}, {"r-2", 1}}
	if diff := cmp.Diff(wantDelivered, delivered); diff != "" {
		t.Errorf("deliveries of the first event of each call (-want +got):\n%s", diff)
	}
	info := tj.consumerInfo(t, "CRM_EVENTS", "crmshare")
	if info.NumRedelivered != 0 {
		t.Errorf("NumRedelivered = %d after settling, want 0", info.NumRedelivered)
	}
	if n := len(tj.deadLetters(t)); n != 0 {
		t.Errorf("dead letters = %d, want 0", n)
	}
}

// testJob is a job for scheduler tests: no message, just keys and a sequence.
func testJob(seq uint64, keys ...string) *job { return &job{seq: seq, keys: keys} }

// nextWithin waits for the scheduler's next run, failing after a while.
func nextWithin(t *testing.T, s *scheduler) []*job {
	t.Helper()
	ch := make(chan []*job, 1)
	go func() { ch <- s.next() }()
	select {
	case run := <-ch:
		return run
	case <-time.After(waitLimit):
		s.close() // unblocks the goroutine
		t.Fatal("no job became ready")
		return nil
	}
}

func seqs(run []*job) []uint64 {
	var out []uint64
	for _, j := range run {
		out = append(out, j.seq)
	}
	return out
}

func TestSchedulerFence(t *testing.T) {
	s := newScheduler(8, 1, 0)
	t.Cleanup(func() { s.close() })
	a1, a2, b1 := testJob(1, "A"), testJob(2, "A"), testJob(3, "B")
	for _, j := range []*job{a1, a2, b1} {
		if adm, _ := s.add(j, false); adm != admitted {
			t.Fatalf("add %d = %v, want admitted", j.seq, adm)
		}
	}
	if got := seqs(nextWithin(t, s)); !cmp.Equal(got, []uint64{1}) {
		t.Fatalf("first run = %v, want [1]", got)
	}
	a1.fenceFor = time.Hour // naked: its redelivery must come first
	s.done(a1)
	if got := seqs(nextWithin(t, s)); !cmp.Equal(got, []uint64{3}) {
		t.Fatalf("run after the nak = %v, want [3] (B flows, A is fenced)", got)
	}
	s.done(b1)
	s.mu.Lock()
	ready := s.isReady(a2, s.now())
	s.mu.Unlock()
	if ready {
		t.Fatal("event 2 is ready while event 1's fence stands")
	}
	redelivery := testJob(1, "A")
	if adm, _ := s.add(redelivery, false); adm != admitted {
		t.Fatalf("add redelivery = %v, want admitted", adm)
	}
	if got := nextWithin(t, s); len(got) != 1 || got[0] != redelivery {
		t.Fatalf("run after the redelivery arrived = %v, want the redelivery of 1", seqs(got))
	}
	s.done(redelivery) // acked: the fence goes
	if got := nextWithin(t, s); len(got) != 1 || got[0] != a2 {
		t.Fatalf("run after the redelivery settled = %v, want [2]", seqs(got))
	}
}

func TestSchedulerFenceExpires(t *testing.T) {
	s := newScheduler(8, 1, 0)
	t.Cleanup(func() { s.close() })
	a1, a2 := testJob(1, "A"), testJob(2, "A")
	s.add(a1, false)
	s.add(a2, false)
	nextWithin(t, s)
	a1.fenceFor = 20 * time.Millisecond // the redelivery went to another replica
	s.done(a1)
	if got := nextWithin(t, s); len(got) != 1 || got[0] != a2 {
		t.Fatalf("run after the fence expired = %v, want [2]", seqs(got))
	}
}

func TestSchedulerHeldCap(t *testing.T) {
	s := newScheduler(4, 1, time.Minute) // holds at most 2 behind fences
	t.Cleanup(func() { s.close() })
	a1 := testJob(1, "A")
	s.add(a1, false)
	nextWithin(t, s)
	a1.fenceFor = time.Hour
	s.done(a1)
	tests := []struct {
		name string
		j    *job
		last bool
		want admission
	}{
		{"first held", testJob(2, "A"), false, admitted},
		{"second held", testJob(3, "A"), false, admitted},
		{"over the cap", testJob(4, "A"), false, overflow},
		{"over the cap on its last delivery", testJob(5, "A"), true, admitted},
		{"another record", testJob(6, "B"), false, admitted},
		{"other records do not wait for held ones", testJob(7, "C"), false, admitted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done := make(chan admission, 1)
			var delay time.Duration
			go func() {
				var adm admission
				adm, delay = s.add(tt.j, tt.last)
				done <- adm
			}()
			select {
			case got := <-done:
				if got != tt.want {
					t.Errorf("add = %v, want %v", got, tt.want)
				}
				if got == overflow && delay <= 0 {
					t.Errorf("overflow delay = %v, want > 0", delay)
				}
			case <-time.After(waitLimit):
				s.close()
				t.Fatal("add blocked")
			}
		})
	}
}

func TestSchedulerRuns(t *testing.T) {
	s := newScheduler(16, 3, 0)
	t.Cleanup(func() { s.close() })
	jobs := []*job{testJob(1, "A"), testJob(2, "A"), testJob(3, "A"), testJob(4, "A"), testJob(5, "A", "B"), testJob(6, "A")}
	for _, j := range jobs {
		s.add(j, false)
	}
	var got [][]uint64
	for range 4 {
		run := nextWithin(t, s)
		got = append(got, seqs(run))
		for _, j := range run {
			s.done(j)
		}
	}
	want := [][]uint64{{1, 2, 3}, {4}, {5}, {6}} // a two-key event runs alone
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("runs (-want +got):\n%s", diff)
	}
}

func TestSchedulerRequeue(t *testing.T) {
	s := newScheduler(16, 4, 0)
	t.Cleanup(func() { s.close() })
	jobs := []*job{testJob(1, "A"), testJob(2, "A"), testJob(3, "A")}
	for _, j := range jobs {
		s.add(j, false)
	}
	run := nextWithin(t, s)
	if got := seqs(run); !cmp.Equal(got, []uint64{1, 2, 3}) {
		t.Fatalf("run = %v, want [1 2 3]", got)
	}
	run[0].fenceFor = time.Hour
	s.done(run[0])
	s.requeue(run[1:]...)
	redelivery := testJob(1, "A")
	s.add(redelivery, false)
	if got := nextWithin(t, s); len(got) != 1 || got[0] != redelivery {
		t.Fatalf("run = %v, want the redelivery of 1 alone", seqs(got))
	}
	s.done(redelivery)
	if got := seqs(nextWithin(t, s)); !cmp.Equal(got, []uint64{2, 3}) {
		t.Fatalf("run after the redelivery = %v, want [2 3]", got)
	}
}

func TestSchedulerRequeueAfterClose(t *testing.T) {
	s := newScheduler(16, 4, 0)
	for _, j := range []*job{testJob(1, "A"), testJob(2, "A")} {
		s.add(j, false)
	}
	run := nextWithin(t, s)
	if left := s.close(); len(left) != 0 {
		t.Fatalf("close gave back %v while they run", seqs(left))
	}
	s.done(run[0])
	if got := seqs(s.requeue(run[1:]...)); !cmp.Equal(got, []uint64{2}) {
		t.Errorf("requeue after close gave back %v, want [2]", got)
	}
	if n := len(s.snapshot()); n != 0 {
		t.Errorf("%d jobs still admitted after close", n)
	}
}
