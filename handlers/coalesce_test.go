package handlers

import (
	"errors"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/go-cmp/cmp"

	"github.com/crmshare/crmshare/zoho"
	"github.com/crmshare/crmshare/zoho/zohoemu"
)

// runEvents returns events e-0..e-n and a Mapper that maps e-i to ins[i] (a
// nil entry fails to map).
func runEvents(ins [][]Intent) ([]event.Event, Mapper) {
	evs := make([]event.Event, len(ins))
	byID := make(map[string]int, len(ins))
	for i := range ins {
		ev := event.New()
		ev.SetID("e-" + string(rune('a'+i)))
		ev.SetSource("/test")
		ev.SetType("deal.assigned")
		evs[i] = ev
		byID[ev.ID()] = i
	}
	return evs, mapperFunc(func(ev event.Event) ([]Intent, error) {
		in := ins[byID[ev.ID()]]
		if in == nil {
			return nil, ruleErr{rule: "broken"}
		}
		return in, nil
	})
}

// outcome classifies a HandleRun result for comparison.
func outcome(err error) string {
	var r interface{ Retryable() bool }
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrDeferred):
		return "deferred"
	case errors.Is(err, ErrMapper):
		return "mapper"
	case errors.As(err, &r) && r.Retryable():
		return "retryable"
	}
	return "permanent"
}

func grantOn(deal, n int, p zoho.Permission) []Intent {
	return []Intent{intent(ActionGrant, "Deals", rid(deal), user(n, p, false))}
}

func TestHandleRun(t *testing.T) {
	ro, rw := zoho.PermissionReadOnly, zoho.PermissionReadWrite
	disabled := []Intent{intent(ActionGrant, "Deals", rid(1), Grant{
		Recipient: zoho.Recipient{Type: zoho.RecipientUser, ID: disabledUser}, Permission: ro})}
	postFails := func(code string, count int) zohoemu.Faults {
		return zohoemu.Faults{Rules: []zohoemu.Fault{{Code: code, Count: count, Methods: []string{"POST"}, Paths: []string{"/actions/share"}}}}
	}
	tests := []struct {
		name      string
		version   string
		faults    zohoemu.Faults
		ins       [][]Intent
		want      []string
		wantCalls Calls
		wantState []zohoemu.Entry // rid(1)'s direct shares afterwards
	}{
		{
			name:      "first-time grants on one record merge into one POST",
			ins:       [][]Intent{grantOn(1, 1, ro), grantOn(1, 2, ro), grantOn(1, 3, rw), grantOn(1, 4, ro)},
			want:      []string{"ok", "ok", "ok", "ok"},
			wantCalls: Calls{Post: 1},
			wantState: []zohoemu.Entry{entry(1, "read_only", false), entry(2, "read_only", false), entry(3, "read_write", false), entry(4, "read_only", false)},
		},
		{
			name:      "the later grant of one recipient wins",
			ins:       [][]Intent{grantOn(1, 1, ro), grantOn(1, 1, rw)},
			want:      []string{"ok", "ok"},
			wantCalls: Calls{Post: 1},
			wantState: []zohoemu.Entry{entry(1, "read_write", false)},
		},
		{
			name: "a run stops at the per-record user cap; the grants past it fail alone",
			ins: [][]Intent{
				grantOn(1, 1, ro), grantOn(1, 2, ro), grantOn(1, 3, ro), grantOn(1, 4, ro), grantOn(1, 5, ro), grantOn(1, 6, ro),
				grantOn(1, 7, ro), grantOn(1, 8, ro), grantOn(1, 9, ro), grantOn(1, 10, ro), grantOn(1, 11, ro), grantOn(1, 12, ro),
			},
			want: []string{"ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "permanent", "permanent"},
			// 10 users in one POST; the next run's POST is refused per entry,
			// then each event is tried alone (POST refused, GET to count).
			wantCalls: Calls{Post: 4, Get: 3},
			wantState: []zohoemu.Entry{
				entry(1, "read_only", false), entry(10, "read_only", false), entry(2, "read_only", false), entry(3, "read_only", false),
				entry(4, "read_only", false), entry(5, "read_only", false), entry(6, "read_only", false), entry(7, "read_only", false),
				entry(8, "read_only", false), entry(9, "read_only", false),
			},
		},
		{
			name:      "an unknown recipient fails only its event",
			ins:       [][]Intent{grantOn(1, 1, ro), disabled, grantOn(1, 2, ro)},
			want:      []string{"ok", "permanent", "ok"},
			wantCalls: Calls{Post: 1},
			wantState: []zohoemu.Entry{entry(1, "read_only", false), entry(2, "read_only", false)},
		},
		{
			name:      "a mapping error in between does not break the run",
			ins:       [][]Intent{grantOn(1, 1, ro), nil, {}, grantOn(1, 2, ro)},
			want:      []string{"ok", "mapper", "ok", "ok"},
			wantCalls: Calls{Post: 1},
			wantState: []zohoemu.Entry{entry(1, "read_only", false), entry(2, "read_only", false)},
		},
		{
			name: "other actions run alone and in order",
			ins: [][]Intent{
				grantOn(1, 1, ro),
				{intent(ActionRevoke, "Deals", rid(1), user(1, 0, false))},
				grantOn(1, 2, ro), grantOn(1, 3, ro),
			},
			want:      []string{"ok", "ok", "ok", "ok"},
			wantCalls: Calls{Post: 2, Get: 1, Delete: 1},
			wantState: []zohoemu.Entry{entry(2, "read_only", false), entry(3, "read_only", false)},
		},
		{
			name:      "a failed merged POST is retried event by event",
			faults:    postFails("INTERNAL_ERROR", 1),
			ins:       [][]Intent{grantOn(1, 1, ro), grantOn(1, 2, ro), grantOn(1, 3, ro)},
			want:      []string{"ok", "ok", "ok"},
			wantCalls: Calls{Post: 4},
			wantState: []zohoemu.Entry{entry(1, "read_only", false), entry(2, "read_only", false), entry(3, "read_only", false)},
		},
		{
			name:      "a retryable failure defers the events after it",
			faults:    postFails("INTERNAL_ERROR", 2),
			ins:       [][]Intent{grantOn(1, 1, ro), grantOn(1, 2, ro), grantOn(1, 3, ro)},
			want:      []string{"retryable", "deferred", "deferred"},
			wantCalls: Calls{Post: 2},
		},
		{
			name:      "throttled: no retry event by event",
			faults:    postFails("TOO_MANY_REQUESTS", 1),
			ins:       [][]Intent{grantOn(1, 1, ro), grantOn(1, 2, ro), grantOn(1, 3, ro)},
			want:      []string{"retryable", "deferred", "deferred"},
			wantCalls: Calls{Post: 1},
		},
		{
			name:      "v2 merges users too",
			version:   "v2",
			ins:       [][]Intent{grantOn(1, 1, ro), grantOn(1, 2, ro)},
			want:      []string{"ok", "ok"},
			wantCalls: Calls{Post: 1},
			wantState: []zohoemu.Entry{entry(1, "read_only", false), entry(2, "read_only", false)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			version := tt.version
			if version == "" {
				version = "v8"
			}
			env := newTestEnv(t, version, testSeed(12, 2))
			env.warmUsers(t)
			evs, m := runEvents(tt.ins)
			env.h.mapper = m
			env.emu.SetFaults(tt.faults)

			errs := env.h.HandleRun(t.Context(), evs)

			var got []string
			for _, err := range errs {
				got = append(got, outcome(err))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("results (-want +got):\n%s\nerrors: %v", diff, errs)
			}
			if diff := cmp.Diff(tt.wantCalls, shareCalls(env.emu.Requests())); diff != "" {
				t.Errorf("share calls (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(sortEntries(tt.wantState), sortEntries(env.emu.Shares("Deals", rid(1)))); diff != "" {
				t.Errorf("shares of the record (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHandleRunPerCallCap(t *testing.T) {
	// 20 grants naming the same 3 users fit one call; a group and a role
	// are counted against their own caps.
	env := newTestEnv(t, "v8", testSeed(3, 1))
	env.warmUsers(t)
	var ins [][]Intent
	for i := range 20 {
		ins = append(ins, grantOn(1, i%3+1, zoho.PermissionReadOnly))
	}
	ins = append(ins,
		[]Intent{intent(ActionGrant, "Deals", rid(1), Grant{Recipient: zoho.Recipient{Type: zoho.RecipientGroup, ID: testGroup}, Permission: zoho.PermissionReadOnly})},
		[]Intent{intent(ActionGrant, "Deals", rid(1), Grant{Recipient: zoho.Recipient{Type: zoho.RecipientRole, ID: testRole}, Permission: zoho.PermissionReadOnly})},
	)
	evs, m := runEvents(ins)
	env.h.mapper = m
	for i, err := range env.h.HandleRun(t.Context(), evs) {
		if err != nil {
			t.Errorf("event %d: %v", i, err)
		}
	}
	if got, want := shareCalls(env.emu.Requests()), (Calls{Post: 1}); got != want {
		t.Errorf("share calls = %+v, want %+v", got, want)
	}
	if got := len(env.emu.Shares("Deals", rid(1))); got != 5 {
		t.Errorf("direct shares = %d, want 5", got)
	}
}
