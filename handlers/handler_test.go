package handlers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/crmshare/crmshare/zoho"
	"github.com/crmshare/crmshare/zoho/zohoemu"
)

func TestNewValidates(t *testing.T) {
	env := newTestEnv(t, "v2", testSeed(1, 1))
	scripted := sharerFuncs{}
	tests := []struct {
		name    string
		cfg     Config
		wantErr []string // substrings of the joined error; nil = valid
	}{
		{name: "client as sharer and directory", cfg: Config{Mapper: mapperFunc(nil), Sharer: env.client}},
		{name: "nothing", cfg: Config{}, wantErr: []string{"mapper is required", "sharer is required", "directory is required"}},
		{name: "sharer without directory", cfg: Config{Mapper: mapperFunc(nil), Sharer: scripted}, wantErr: []string{"directory is required"}},
		{name: "unknown version", cfg: Config{Mapper: mapperFunc(nil), Sharer: env.client, APIVersion: "v7"}, wantErr: []string{`api version "v7"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := New(tt.cfg)
			if tt.wantErr == nil {
				if err != nil || h == nil {
					t.Fatalf("New = %v, %v; want a handler", h, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("New succeeded, want errors %q", tt.wantErr)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("New error %q does not mention %q", err, s)
				}
			}
		})
	}
}

// TestAPIVersionFromSharer: with APIVersion empty the handler follows the
// client's dialect, so a v2 client refuses groups before calling Zoho.
func TestAPIVersionFromSharer(t *testing.T) {
	env := newTestEnv(t, "v2", testSeed(1, 1))
	_, err := env.h.ApplyIntents(t.Context(), []Intent{intent(ActionGrant, "Deals", rid(1),
		Grant{Recipient: zoho.Recipient{Type: zoho.RecipientGroup, ID: testGroup}, Permission: ro})})
	if !errors.Is(err, ErrInvalidIntent) {
		t.Fatalf("error = %v, want ErrInvalidIntent", err)
	}
	if got := env.emu.Requests().Total; got != 0 {
		t.Errorf("emulator saw %d requests, want 0", got)
	}
}

func TestHandle(t *testing.T) {
	env := newTestEnv(t, "v8", testSeed(3, 2))
	ev := event.New()
	ev.SetID("ev-1")
	ev.SetType("deal.assigned")
	ev.SetSource("urn:test")
	mapped := mapperFunc(func(ev event.Event) ([]Intent, error) {
		if ev.Type() != "deal.assigned" {
			return nil, ruleErr{rule: "share-deal"}
		}
		return []Intent{
			intent(ActionGrant, "Deals", rid(1), Grant{Email: email(1), Permission: rw, ShareRelated: true}),
			intent(ActionGrant, "Deals", rid(2), user(2, ro, false)),
		}, nil
	})
	h, err := New(Config{Mapper: mapped, Sharer: env.client})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"Deals/" + rid(1), "Deals/" + rid(2)}, h.OrderingKeys(ev)); diff != "" {
		t.Errorf("OrderingKeys (-want +got):\n%s", diff)
	}
	if err := h.Handle(t.Context(), ev); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	if diff := cmp.Diff([]zohoemu.Entry{entry(1, "read_write", true)}, env.emu.Shares("Deals", rid(1))); diff != "" {
		t.Errorf("Deals/%s (-want +got):\n%s", rid(1), diff)
	}
	if diff := cmp.Diff([]zohoemu.Entry{entry(2, "read_only", false)}, env.emu.Shares("Deals", rid(2))); diff != "" {
		t.Errorf("Deals/%s (-want +got):\n%s", rid(2), diff)
	}

	ev.SetType("deal.broken")
	rep, err := h.Apply(t.Context(), ev)
	var he *Error
	if !errors.As(err, &he) || !errors.Is(err, ErrMapper) {
		t.Fatalf("Apply error = %v, want a *handlers.Error wrapping ErrMapper", err)
	}
	if he.Retryable() || he.Rule() != "share-deal" {
		t.Errorf("mapper error: Retryable() = %t, Rule() = %q; want false, share-deal", he.Retryable(), he.Rule())
	}
	if len(rep.Intents) != 0 {
		t.Errorf("report has %d intents, want none", len(rep.Intents))
	}
}

// ruleErr is a mapper error that names its rule, as the rules engine's do.
type ruleErr struct{ rule string }

func (e ruleErr) Error() string { return "rule " + e.rule + ": no such field" }
func (e ruleErr) Rule() string  { return e.rule }

// TestErrorsFromZoho scripts the failures the emulator does not produce on
// demand and checks how they are classified and passed through.
func TestErrorsFromZoho(t *testing.T) {
	fiveHundred := &zoho.Error{Status: 500, Code: "INTERNAL_ERROR", Message: "Internal Server Error"}
	creds := &zoho.CredentialsError{Code: "invalid_code"}
	ok := func(s []zoho.Share) []zoho.Result {
		out := make([]zoho.Result, len(s))
		for i := range out {
			out[i] = zoho.Result{Code: "SUCCESS"}
		}
		return out
	}
	tests := []struct {
		name      string
		share     func(s []zoho.Share) ([]zoho.Result, error)
		retryable bool
		as        func(error) bool
		calls     int // share calls across both records
	}{
		{
			name:      "5xx is retryable and reaches *zoho.Error",
			share:     func([]zoho.Share) ([]zoho.Result, error) { return nil, fiveHundred },
			retryable: true,
			as:        func(err error) bool { var ze *zoho.Error; return errors.As(err, &ze) && ze.Status == 500 },
			calls:     2,
		},
		{
			name:  "credentials error passes through and stops the other records",
			share: func([]zoho.Share) ([]zoho.Result, error) { return nil, creds },
			as: func(err error) bool {
				var ce *zoho.CredentialsError
				return errors.As(err, &ce) && ce.Suspend()
			},
			calls: 1,
		},
		{
			name:      "fewer results than entries",
			share:     func(s []zoho.Share) ([]zoho.Result, error) { return ok(s)[1:], nil },
			retryable: true,
			as:        func(err error) bool { return errors.Is(err, ErrUnexpectedReply) },
			calls:     2,
		},
		{
			name: "per-entry refusal names the recipient",
			share: func(s []zoho.Share) ([]zoho.Result, error) {
				r := ok(s)
				r[0] = zoho.Result{Code: "INVALID_DATA", Err: &zoho.Error{Status: 400, Code: "INVALID_DATA", Message: "invalid user Id"}}
				return r, nil
			},
			as: func(err error) bool {
				var he *Error
				return errors.As(err, &he) && he.Recipient() == "users:"+uid(1)
			},
			calls: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			calls := 0
			s := sharerFuncs{share: func(_ context.Context, _, _ string, sh []zoho.Share) ([]zoho.Result, error) {
				mu.Lock()
				calls++
				mu.Unlock()
				return tt.share(sh)
			}}
			h, err := New(Config{Mapper: mapperFunc(nil), Sharer: s, Directory: directoryFunc(nil)})
			if err != nil {
				t.Fatal(err)
			}
			_, err = h.ApplyIntents(t.Context(), []Intent{
				intent(ActionGrant, "Deals", rid(1), user(1, ro, false), user(2, ro, false)),
				intent(ActionGrant, "Deals", rid(2), user(1, ro, false), user(2, ro, false)),
			})
			if err == nil {
				t.Fatal("ApplyIntents succeeded, want an error")
			}
			var r interface{ Retryable() bool }
			if !errors.As(err, &r) || r.Retryable() != tt.retryable {
				t.Errorf("Retryable() of %v: want %t", err, tt.retryable)
			}
			if !tt.as(err) {
				t.Errorf("error %v (%T) does not carry what it should", err, err)
			}
			if calls != tt.calls {
				t.Errorf("share calls = %d, want %d", calls, tt.calls)
			}
		})
	}
}

// directoryFunc adapts a func to Directory; nil means every user is active.
type directoryFunc func(id string) (zoho.User, error)

func (f directoryFunc) UserByID(_ context.Context, id string) (zoho.User, error) {
	if f == nil {
		return zoho.User{ID: id, Status: "active", Confirm: true}, nil
	}
	return f(id)
}

func (f directoryFunc) UserByEmail(ctx context.Context, email string) (zoho.User, error) {
	return f.UserByID(ctx, email)
}

// TestJoinedErrorsPutRetryableFirst: one record failing for good and one for
// now must leave the message retryable, with both errors reachable.
func TestJoinedErrorsPutRetryableFirst(t *testing.T) {
	env := newTestEnv(t, "v8", testSeed(3, 2))
	env.warmUsers(t)
	env.emu.SetFaults(zohoemu.Faults{Rules: []zohoemu.Fault{{Code: "INTERNAL_ERROR", Count: 1, Paths: []string{rid(2)}}}})
	_, err := env.h.ApplyIntents(t.Context(), []Intent{
		intent(ActionGrant, "Deals", rid(1), Grant{Email: "nobody@acme.example", Permission: ro}),
		intent(ActionGrant, "Deals", rid(2), user(2, ro, false)),
	})
	var r interface{ Retryable() bool }
	if !errors.As(err, &r) || !r.Retryable() {
		t.Errorf("Retryable() of %v: want true", err)
	}
	if !errors.Is(err, zoho.ErrUserNotFound) {
		t.Errorf("error %v does not reach ErrUserNotFound", err)
	}
}

// TestUnknownOutcomeConverges: a write that Zoho applied but whose reply was
// lost (5xx or dropped connection after applying) is retryable, and the retry
// converges without writing again.
func TestUnknownOutcomeConverges(t *testing.T) {
	tests := []struct {
		name   string
		before []zohoemu.Entry
		in     Intent
		after  []zohoemu.Entry
		retry  Calls // share calls of the retry
	}{
		{name: "grant", in: intent(ActionGrant, "Deals", rid(1), user(1, rw, true)),
			after: []zohoemu.Entry{entry(1, "read_write", true)}, retry: Calls{Post: 1, Get: 1, Users: 1}},
		{name: "grant changing a permission", before: []zohoemu.Entry{entry(1, "read_only", false), entry(2, "read_only", false)},
			in:    intent(ActionGrant, "Deals", rid(1), user(1, fa, false)),
			after: []zohoemu.Entry{entry(1, "full_access", false), entry(2, "read_only", false)}, retry: Calls{Post: 1, Get: 1, Users: 1}},
		{name: "revoke", before: []zohoemu.Entry{entry(1, "read_only", false), entry(2, "read_write", true)},
			in:    intent(ActionRevoke, "Deals", rid(1), user(1, 0, false)),
			after: []zohoemu.Entry{entry(2, "read_write", true)}, retry: Calls{Get: 1}},
		{name: "set", before: []zohoemu.Entry{entry(1, "read_only", false)},
			in:    intent(ActionSet, "Deals", rid(1), user(2, rw, false), user(3, ro, true)),
			after: []zohoemu.Entry{entry(2, "read_write", false), entry(3, "read_only", true)}, retry: Calls{Get: 1, Users: 2}},
		{name: "revoke_all", before: []zohoemu.Entry{entry(1, "read_only", false)},
			in: intent(ActionRevokeAll, "Deals", rid(1)), retry: Calls{Delete: 1}},
	}
	for _, version := range versions {
		for _, kind := range []string{"error", "drop"} {
			for _, tt := range tests {
				t.Run(version+"/"+kind+"/"+tt.name, func(t *testing.T) {
					env := newTestEnv(t, version, testSeed(3, 1))
					if tt.before != nil {
						env.setShares(t, "Deals", rid(1), tt.before...)
					}
					env.warmUsers(t)
					// The last write of the first attempt is applied, then fails.
					f := zohoemu.Fault{Kind: kind, After: true, Count: 1}
					if kind == "error" {
						f.Code = "INTERNAL_ERROR"
					}
					first, err := env.h.ApplyIntents(t.Context(), []Intent{tt.in})
					if err != nil {
						t.Fatalf("dry run: %v", err)
					}
					// Start again from the same state with the fault on the last write.
					env = newTestEnv(t, version, testSeed(3, 1))
					if tt.before != nil {
						env.setShares(t, "Deals", rid(1), tt.before...)
					}
					env.warmUsers(t)
					f.Skip = first.Calls.Post + first.Calls.Put + first.Calls.Delete - 1
					env.emu.SetFaults(zohoemu.Faults{Rules: []zohoemu.Fault{f}})
					_, err = env.h.ApplyIntents(t.Context(), []Intent{tt.in})
					var r interface{ Retryable() bool }
					if !errors.As(err, &r) || !r.Retryable() {
						t.Fatalf("first attempt error = %v, want a retryable one", err)
					}
					applied := env.emu.Requests().AppliedWrites
					rep, err := env.h.ApplyIntents(t.Context(), []Intent{tt.in})
					if err != nil {
						t.Fatalf("retry: %v", err)
					}
					if diff := cmp.Diff(tt.retry, rep.Calls); diff != "" {
						t.Errorf("retry calls (-want +got):\n%s", diff)
					}
					if got := env.emu.Requests().AppliedWrites; got != applied {
						t.Errorf("the retry applied %d more writes, want 0", got-applied)
					}
					if diff := cmp.Diff(sortEntries(tt.after), sortEntries(env.emu.Shares("Deals", rid(1)))); diff != "" {
						t.Errorf("shares (-want +got):\n%s", diff)
					}
				})
			}
		}
	}
}

// TestRecordLock: concurrent read-modify-writes on one record must not lose
// each other's changes.
func TestRecordLock(t *testing.T) {
	env := newTestEnv(t, "v8", testSeed(10, 1))
	var all []zohoemu.Entry
	for n := 1; n <= 10; n++ {
		all = append(all, entry(n, "read_only", false))
	}
	env.setShares(t, "Deals", rid(1), all...)
	var wg sync.WaitGroup
	errs := make(chan error, 9)
	for n := 1; n <= 9; n++ {
		wg.Go(func() {
			_, err := env.h.ApplyIntents(t.Context(), []Intent{intent(ActionRevoke, "Deals", rid(1), user(n, 0, false))})
			if err != nil {
				errs <- fmt.Errorf("revoke user %d: %w", n, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if diff := cmp.Diff([]zohoemu.Entry{entry(10, "read_only", false)}, env.emu.Shares("Deals", rid(1))); diff != "" {
		t.Errorf("shares after nine concurrent revokes (-want +got):\n%s", diff)
	}
	if n := len(env.h.locks.m); n != 0 {
		t.Errorf("%d record locks left behind", n)
	}
}

func TestLockHonoursContext(t *testing.T) {
	var l recordLocks
	l.m = make(map[string]*recordLock)
	unlock, err := l.lock(t.Context(), "Deals/1")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := l.lock(ctx, "Deals/1"); !errors.Is(err, context.Canceled) {
		t.Errorf("lock on a held record with a cancelled context = %v, want context.Canceled", err)
	}
	unlock()
	if len(l.m) != 0 {
		t.Errorf("%d locks left behind", len(l.m))
	}
}

func TestSpansAndMetrics(t *testing.T) {
	env := newTestEnv(t, "v8", testSeed(3, 2))
	env.setShares(t, "Deals", rid(2), entry(1, "read_only", false))
	_, err := env.h.ApplyIntents(t.Context(), []Intent{
		intent(ActionGrant, "Deals", rid(1), user(1, rw, true), user(2, ro, false)),
		intent(ActionRevoke, "Deals", rid(2), user(1, 0, false)),
		intent(ActionGrant, "Deals", rid(2), Grant{Email: "nobody@acme.example", Permission: ro}),
	})
	if !errors.Is(err, zoho.ErrUserNotFound) {
		t.Fatalf("error = %v, want ErrUserNotFound", err)
	}
	type span struct {
		Name   string
		Attrs  map[string]string
		Status codes.Code
		Events int
	}
	var got []span
	for _, s := range env.spans.Ended() {
		if !strings.HasPrefix(s.Name(), "share ") {
			continue
		}
		attrs := make(map[string]string)
		for _, kv := range s.Attributes() {
			if strings.HasPrefix(string(kv.Key), "crmshare.") {
				attrs[string(kv.Key)] = kv.Value.Emit()
			}
		}
		got = append(got, span{Name: s.Name(), Attrs: attrs, Status: s.Status().Code, Events: len(s.Events())})
	}
	want := []span{
		{Name: "share Deals", Status: codes.Unset, Attrs: map[string]string{"crmshare.rule": "rule-grant", "crmshare.action": "grant",
			"crmshare.module": "Deals", "crmshare.record_id": rid(1), "crmshare.recipient_count": "2", "crmshare.outcome": "applied"}},
		{Name: "share Deals", Status: codes.Unset, Attrs: map[string]string{"crmshare.rule": "rule-revoke", "crmshare.action": "revoke",
			"crmshare.module": "Deals", "crmshare.record_id": rid(2), "crmshare.recipient_count": "1", "crmshare.outcome": "applied"}},
		{Name: "share Deals", Status: codes.Error, Events: 1, Attrs: map[string]string{"crmshare.rule": "rule-grant", "crmshare.action": "grant",
			"crmshare.module": "Deals", "crmshare.record_id": rid(2), "crmshare.recipient_count": "1", "crmshare.outcome": "error"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("spans (-want +got):\n%s", diff)
	}

	var rm metricdata.ResourceMetrics
	if err := env.metrics.Collect(t.Context(), &rm); err != nil {
		t.Fatal(err)
	}
	counts := sumBy(rm, "crmshare.intents", "action", "outcome")
	if diff := cmp.Diff(map[string]int64{"grant/applied": 1, "revoke/applied": 1, "grant/error": 1}, counts); diff != "" {
		t.Errorf("crmshare.intents (-want +got):\n%s", diff)
	}

	// The grant on rid(1) is one POST. On rid(2) the grant fails before any
	// call (no such user), so the record's calls are the revoke's: a read,
	// then a DELETE, as the user was the last one.
	calls := sumBy(rm, "crmshare.share_calls", "action", "method")
	if diff := cmp.Diff(map[string]int64{"grant/POST": 1, "revoke/GET": 1, "revoke/DELETE": 1}, calls); diff != "" {
		t.Errorf("crmshare.share_calls (-want +got):\n%s", diff)
	}
}

// TestShareCallsMixed: one write that carries a grant and a revoke counts
// its calls as mixed.
func TestShareCallsMixed(t *testing.T) {
	env := newTestEnv(t, "v8", testSeed(3, 2))
	env.setShares(t, "Deals", rid(2), entry(1, "read_only", false))
	if _, err := env.h.ApplyIntents(t.Context(), []Intent{
		intent(ActionRevoke, "Deals", rid(2), user(1, 0, false)),
		intent(ActionGrant, "Deals", rid(2), user(2, ro, false)),
	}); err != nil {
		t.Fatal(err)
	}
	var rm metricdata.ResourceMetrics
	if err := env.metrics.Collect(t.Context(), &rm); err != nil {
		t.Fatal(err)
	}
	calls := sumBy(rm, "crmshare.share_calls", "action")
	if calls["mixed"] == 0 || len(calls) != 1 {
		t.Errorf("crmshare.share_calls by action = %v, want only mixed", calls)
	}
}

// sumBy adds up the Int64 counter name's points by the values of keys,
// joined with "/".
func sumBy(rm metricdata.ResourceMetrics, name string, keys ...string) map[string]int64 {
	out := make(map[string]int64)
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				var vals []string
				for _, k := range keys {
					v, _ := dp.Attributes.Value(attribute.Key(k))
					vals = append(vals, v.AsString())
				}
				out[strings.Join(vals, "/")] += dp.Value
			}
		}
	}
	return out
}
