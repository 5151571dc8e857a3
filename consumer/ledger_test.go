package consumer

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ledgerBucket makes a bucket holding "applied-1" and "applied-2", and
// "deleted" put then deleted.
func ledgerBucket(t *testing.T, tj *testJS, bucket string) jetstream.KeyValue {
	t.Helper()
	kv, err := tj.js.CreateKeyValue(t.Context(), jetstream.KeyValueConfig{Bucket: bucket, History: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"applied-1", "applied-2", "deleted"} {
		if _, err := kv.Put(t.Context(), k, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	if err := kv.Delete(t.Context(), "deleted"); err != nil {
		t.Fatal(err)
	}
	return kv
}

// countRequests counts the messages published on subject from now on.
func countRequests(t *testing.T, tj *testJS, subject string) *atomic.Int64 {
	t.Helper()
	var n atomic.Int64
	sub, err := tj.nc.Subscribe(subject, func(*nats.Msg) { n.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := tj.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return &n
}

// TestLedger_lookup: recorded keys are found, deleted and unknown ones are
// not, whether the bucket answers direct gets in batches or (the fallback)
// only key by key.
func TestLedger_lookup(t *testing.T) {
	keys := []string{"applied-1", "never", "deleted", "applied-2"}
	want := []bool{true, false, false, true}
	for _, direct := range []bool{true, false} {
		t.Run(fmt.Sprintf("direct get %v", direct), func(t *testing.T) {
			tj := startJS(t)
			kv := ledgerBucket(t, tj, "ledger_test")
			if !direct {
				st, err := tj.js.Stream(t.Context(), "KV_ledger_test")
				if err != nil {
					t.Fatal(err)
				}
				cfg := st.CachedInfo().Config
				cfg.AllowDirect = false
				if _, err := tj.js.UpdateStream(t.Context(), cfg); err != nil {
					t.Fatal(err)
				}
				// Bind again so the client's key-by-key reads stop using
				// direct gets too.
				if kv, err = tj.js.KeyValue(t.Context(), "ledger_test"); err != nil {
					t.Fatal(err)
				}
			}
			l := newLedger(tj.js, kv, "ledger_test")
			for range 2 { // the second read knows whether direct gets work
				got, err := l.lookup(t.Context(), keys)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("applied (-want +got):\n%s", diff)
				}
			}
			l.mu.Lock()
			usedDirect := time.Now().After(l.keyByKeyUntil)
			l.mu.Unlock()
			if usedDirect != direct {
				t.Errorf("ledger reads with direct get = %v, want %v", usedDirect, direct)
			}
		})
	}
}

// TestLedger_startBatches: reads started together go out in a few direct
// gets, not one per key, and each gets its own answer.
func TestLedger_startBatches(t *testing.T) {
	tj := startJS(t)
	kv := ledgerBucket(t, tj, "ledger_test")
	requests := countRequests(t, tj, "$JS.API.DIRECT.GET.KV_ledger_test")
	l := newLedger(tj.js, kv, "ledger_test")

	const n = 200
	lookups := make([]*ledgerLookup, n)
	for i := range lookups {
		k := fmt.Sprintf("never-%d", i)
		if i%50 == 0 {
			k = "applied-1"
		}
		lookups[i] = l.start([]string{k})
	}
	for i, r := range lookups {
		got, err := r.wait(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if want := i%50 == 0; got[0] != want {
			t.Errorf("lookup %d: applied = %v, want %v", i, got[0], want)
		}
	}
	if err := tj.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	// The runner takes what is queued each time it sends: the first read
	// may go alone, the rest follow in few batches.
	if got := requests.Load(); got < 1 || got > n/10 {
		t.Errorf("%d direct get requests for %d reads started together, want 1 to %d", got, n, n/10)
	}
}

// TestLedger_waitCanceled: a caller that gives up gets its context's error;
// the read still completes for the others.
func TestLedger_waitCanceled(t *testing.T) {
	tj := startJS(t)
	kv := ledgerBucket(t, tj, "ledger_test")
	l := newLedger(tj.js, kv, "ledger_test")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := l.start([]string{"applied-1"}).wait(ctx); err == nil {
		t.Error("wait with a canceled context succeeded")
	}
	got, err := l.lookup(t.Context(), []string{"applied-1"})
	if err != nil || !got[0] {
		t.Errorf("lookup after a canceled wait = %v, %v; want [true], nil", got, err)
	}
}

// TestRecentKeys keeps the last n keys.
func TestRecentKeys(t *testing.T) {
	r := newRecentKeys(3)
	for _, k := range []string{"a", "b", "a", "c", "d"} {
		r.add(k)
	}
	for k, want := range map[string]bool{"a": false, "b": true, "c": true, "d": true, "e": false} {
		if got := r.has(k); got != want {
			t.Errorf("has(%q) = %v, want %v", k, got, want)
		}
	}
}

// TestDuplicatesInOnePull: two copies of one CloudEvent (same source and id,
// different Nats-Msg-Id) that arrive in the same pull have their ledger reads
// started together, before either is handled. The second must still be
// skipped: it waits in the first's lane, and the first is recorded by then.
func TestDuplicatesInOnePull(t *testing.T) {
	tj := startJS(t)
	var got calls
	cfg, _ := setUpByRecord(t, tj, &got)
	ev := newEvent(t, "evt-twice", "deal.assigned", "D1")
	for _, id := range []string{"copy-1", "copy-2"} {
		msg, err := Encode("crm.events.deal.assigned", ev, ModeBinary)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tj.js.PublishMsg(t.Context(), msg, jetstream.WithMsgID(id)); err != nil {
			t.Fatal(err)
		}
	}
	startConsumer(t, cfg)
	waitFor(t, "both copies to be settled", tj.settledAll(t, 2))
	if n := got.count(); n != 1 {
		t.Errorf("handler calls = %d, want 1", n)
	}
}

// plannedHandler is a Planner whose Handle records whether the plan reached
// its context.
type plannedHandler struct {
	planned, unplanned atomic.Int64
	keyCalls           atomic.Int64
}

type planCtxKey struct{}

func (h *plannedHandler) OrderingKeys(event.Event) []string {
	h.keyCalls.Add(1)
	return nil
}

func (h *plannedHandler) PlanKeys(ev event.Event) ([]string, func(context.Context) context.Context) {
	id := ev.ID()
	return []string{"Deals/" + ev.Subject()}, func(ctx context.Context) context.Context {
		return context.WithValue(ctx, planCtxKey{}, id)
	}
}

func (h *plannedHandler) Handle(ctx context.Context, ev event.Event) error {
	if id, _ := ctx.Value(planCtxKey{}).(string); id == ev.ID() {
		h.planned.Add(1)
	} else {
		h.unplanned.Add(1)
	}
	return nil
}

// TestPlannerContextReachesHandle: a Planner's plan is in the context of
// each event's Handle call, and OrderingKeys is not asked as well.
func TestPlannerContextReachesHandle(t *testing.T) {
	tj := startJS(t)
	h := &plannedHandler{}
	startConsumer(t, tj.config(h))
	for i := range 5 {
		tj.publish(t, "crm.events.deal.assigned", newEvent(t, eventID(i), "deal.assigned", fmt.Sprintf("D%d", i%2)), ModeBinary)
	}
	waitFor(t, "5 events to be settled", tj.settledAll(t, 5))
	if p, u, k := h.planned.Load(), h.unplanned.Load(), h.keyCalls.Load(); p != 5 || u != 0 || k != 0 {
		t.Errorf("planned %d, unplanned %d, OrderingKeys calls %d; want 5, 0, 0", p, u, k)
	}
}

// TestLedger_oldServerFallsBack: a server before 2.11 answers a multi_last
// request "408 Empty Request"; the ledger then reads key by key, correctly.
func TestLedger_oldServerFallsBack(t *testing.T) {
	tj := startJS(t)
	kv := ledgerBucket(t, tj, "ledger_test")
	l := newLedger(tj.js, kv, "ledger_test")
	// Stand in for the old server's direct get API.
	l.getSubject = "test.old-server.direct-get"
	sub, err := tj.nc.Subscribe(l.getSubject, func(m *nats.Msg) {
		r := nats.NewMsg(m.Reply)
		r.Header.Set("Status", "408")
		r.Header.Set("Description", "Empty Request")
		_ = m.RespondMsg(r)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	got, err := l.lookup(t.Context(), []string{"applied-1", "never", "deleted"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]bool{true, false, false}, got); diff != "" {
		t.Errorf("applied (-want +got):\n%s", diff)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !time.Now().Before(l.keyByKeyUntil) {
		t.Error("the ledger still reads with multi_last after a 408")
	}
}

// TestLedger_lookupManyKeys: one lookup of more keys than one request takes
// goes out in several multi_last requests and answers every key.
func TestLedger_lookupManyKeys(t *testing.T) {
	tj := startJS(t)
	kv := ledgerBucket(t, tj, "ledger_test")
	requests := countRequests(t, tj, "$JS.API.DIRECT.GET.KV_ledger_test")
	l := newLedger(tj.js, kv, "ledger_test")
	keys := make([]string, 3*maxLedgerBatch)
	want := make([]bool, len(keys))
	for i := range keys {
		keys[i] = fmt.Sprintf("never-%d", i)
	}
	for _, i := range []int{0, maxLedgerBatch + 1, len(keys) - 1} {
		keys[i], want[i] = "applied-1", true
	}
	keys[maxLedgerBatch+2] = "deleted"
	got, err := l.lookup(t.Context(), keys)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("applied (-want +got):\n%s", diff)
	}
	if err := tj.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	// 3×256 keys, "applied-1" three times: 766 distinct, in three requests.
	if n := requests.Load(); n != 3 {
		t.Errorf("%d direct get requests, want 3", n)
	}
}

// TestDuplicateBehindOtherRecordedEvents: a duplicate waits in its lane behind
// the first copy and another event of the same record. Its ledger read was
// made before either was applied, and the keys recorded since have pushed the
// first copy's key out of the recent keys (kept to one here), so only the
// record of keys in flight tells it the event was applied.
func TestDuplicateBehindOtherRecordedEvents(t *testing.T) {
	tj := startJS(t)
	var got calls
	_, c := setUpByRecord(t, tj, &got)
	c.recent = newRecentKeys(1)
	first := newEvent(t, "evt-first", "deal.assigned", "D1")
	other := newEvent(t, "evt-other", "deal.assigned", "D1")
	for i, ev := range []event.Event{first, other, first} {
		msg, err := Encode("crm.events.deal.assigned", ev, ModeBinary)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tj.js.PublishMsg(t.Context(), msg, jetstream.WithMsgID(fmt.Sprintf("copy-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	finished := make(chan error, 1)
	go func() { finished <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-finished; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	waitFor(t, "all three to be settled", tj.settledAll(t, 3))
	var ids []string
	for _, cl := range got.list() {
		ids = append(ids, cl.id)
	}
	if diff := cmp.Diff([]string{"evt-first", "evt-other"}, ids); diff != "" {
		t.Errorf("handled (-want +got):\n%s", diff)
	}
	// Settling releases the key after the ack the server reports.
	waitFor(t, "no key left in flight", func() bool {
		c.inflight.mu.Lock()
		defer c.inflight.mu.Unlock()
		return len(c.inflight.m) == 0
	})
}

// setUpByRecord makes a consumer whose handler records its calls in got and
// orders events by their subject's record, and sets up its stream, so a
// test can publish before it runs.
func setUpByRecord(t *testing.T, tj *testJS, got *calls) (Config, *Consumer) {
	t.Helper()
	cfg := tj.config(keyedHandler{
		HandlerFunc: func(ctx context.Context, ev event.Event) error {
			got.add(ctx, ev)
			return nil
		},
		keys: func(ev event.Event) []string { return []string{"Deals/" + ev.Subject()} },
	})
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Setup(t.Context()); err != nil {
		t.Fatal(err)
	}
	return cfg, c
}
