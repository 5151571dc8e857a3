package handlers

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/crmshare/crmshare/zoho"
	"github.com/crmshare/crmshare/zoho/zohoemu"
)

// TestApplyIntentsRandomWithFaults applies 2,000 random intents over 20 records
// and 30 users with 16 workers (each record's intents in their given order,
// sometimes several in one call) while the emulator fails about 10% of the calls
// with 5xx replies and dropped connections, before and after applying writes.
// Every failed call is retried until it succeeds. The emulator must end exactly
// where a sequential model of the same intents ends, and never hold more than
// 10 users on a record.
func TestApplyIntentsRandomWithFaults(t *testing.T) {
	const (
		seed    = 20261123
		records = 20
		users   = 30
		total   = 2000
		workers = 16
	)
	for i, version := range versions {
		t.Run(version, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, uint64(i)))
			batches, model := randomWorkload(rng, records, users, total)

			env := newTestEnv(t, version, testSeed(users, records))
			env.emu.SetFaults(zohoemu.Faults{Seed: seed + uint64(i), Rules: []zohoemu.Fault{
				{Kind: "error", Code: "INTERNAL_ERROR", Rate: 0.025},
				{Kind: "drop", Rate: 0.025},
				{Kind: "error", Code: "INTERNAL_ERROR", Rate: 0.05, After: true},
				{Kind: "drop", Rate: 0.05, After: true},
			}})

			var wg sync.WaitGroup
			var mu sync.Mutex
			var retries, failed int
			for w := range workers {
				wg.Go(func() {
					for _, b := range batches {
						if b.record%workers != w {
							continue
						}
						for attempt := 1; ; attempt++ {
							_, err := env.h.ApplyIntents(t.Context(), b.intents)
							if err == nil {
								break
							}
							var r interface{ Retryable() bool }
							if !errors.As(err, &r) || !r.Retryable() || attempt == 50 {
								t.Errorf("record %d, attempt %d: permanent or endless failure: %v", b.record, attempt, err)
								mu.Lock()
								failed++
								mu.Unlock()
								break
							}
							mu.Lock()
							retries++
							mu.Unlock()
						}
					}
				})
			}
			wg.Wait()
			if failed > 0 {
				t.Fatalf("%d batches failed", failed)
			}
			env.emu.SetFaults(zohoemu.Faults{})
			st := env.emu.Requests()
			t.Logf("%d intents in %d calls, %d retries; emulator: %d requests, %d writes (%d applied)",
				total, len(batches), retries, st.Total, st.Writes, st.AppliedWrites)
			if retries == 0 {
				t.Errorf("no call failed: the faults were not injected")
			}
			for n := 1; n <= records; n++ {
				want := model[n].entries()
				got := sortEntries(env.emu.Shares("Deals", rid(n)))
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("record %d: shares (-model +emulator):\n%s", n, diff)
				}
			}
			if got := env.emu.MaxUsersEverShared(); got > 10 {
				t.Errorf("a record was shared with %d users at once", got)
			}
		})
	}
}

type batch struct {
	record  int
	intents []Intent
}

// modelRecord is a record's direct shares in the sequential model: user number
// → access.
type modelRecord map[int]access

func (m modelRecord) entries() []zohoemu.Entry {
	var out []zohoemu.Entry
	for n, a := range m {
		out = append(out, zohoemu.Entry{Type: "users", ID: uid(n), Permission: a.perm.String(), ShareRelated: a.related})
	}
	return sortEntries(out)
}

// randomWorkload makes the intents, grouped into calls of one to three intents
// of one record, and the model state they lead to. It keeps every record within
// Zoho's 10-user limit, so every intent can succeed.
func randomWorkload(rng *rand.Rand, records, users, total int) ([]batch, map[int]modelRecord) {
	model := make(map[int]modelRecord, records)
	for n := 1; n <= records; n++ {
		model[n] = modelRecord{}
	}
	perms := []zoho.Permission{ro, rw, fa}
	recipient := func(n int) Grant {
		g := Grant{Permission: perms[rng.IntN(3)], ShareRelated: rng.IntN(2) == 0}
		if rng.IntN(4) == 0 {
			g.Email = email(n)
		} else {
			g.Recipient = zoho.Recipient{Type: zoho.RecipientUser, ID: uid(n)}
		}
		return g
	}
	some := func(max int) []int {
		k := rng.IntN(max + 1)
		var ns []int
		for range k {
			ns = append(ns, 1+rng.IntN(users))
		}
		return ns
	}
	// merged applies one intent's recipients with the handler's documented
	// rule for duplicates: the most access wins.
	merged := func(gs []Grant) map[int]access {
		out := make(map[int]access)
		for _, g := range gs {
			var n int
			if g.Email != "" {
				fmt.Sscanf(g.Email, "user%d@", &n)
			} else {
				fmt.Sscanf(g.Recipient.ID[13:], "%d", &n)
			}
			a, ok := out[n]
			if !ok {
				out[n] = access{perm: g.Permission, related: g.ShareRelated}
				continue
			}
			out[n] = access{perm: max(a.perm, g.Permission), related: a.related || g.ShareRelated}
		}
		return out
	}

	var batches []batch
	pending := make(map[int][]Intent)
	for i := range total {
		rec := 1 + rng.IntN(records)
		m := model[rec]
		var in Intent
		switch p := rng.IntN(100); {
		case p < 40:
			var gs []Grant
			for _, n := range some(3) {
				gs = append(gs, recipient(n))
			}
			next := maps(m)
			for n, a := range merged(gs) {
				next[n] = a
			}
			if len(next) > 10 {
				// Too many for Zoho: revoke a few instead.
				in = intent(ActionRevoke, "Deals", rid(rec), gs...)
				for n := range merged(gs) {
					delete(m, n)
				}
				break
			}
			in = intent(ActionGrant, "Deals", rid(rec), gs...)
			for n, a := range merged(gs) {
				m[n] = a
			}
		case p < 65:
			var gs []Grant
			for _, n := range some(3) {
				gs = append(gs, recipient(n))
			}
			in = intent(ActionRevoke, "Deals", rid(rec), gs...)
			for n := range merged(gs) {
				delete(m, n)
			}
		case p < 90:
			var gs []Grant
			for _, n := range some(6) {
				gs = append(gs, recipient(n))
			}
			in = intent(ActionSet, "Deals", rid(rec), gs...)
			clear(m)
			for n, a := range merged(gs) {
				m[n] = a
			}
		default:
			in = intent(ActionRevokeAll, "Deals", rid(rec))
			clear(m)
		}
		in.Rule = fmt.Sprintf("r%d", i)
		pending[rec] = append(pending[rec], in)
		if rng.IntN(3) == 0 || len(pending[rec]) == 3 {
			batches = append(batches, batch{record: rec, intents: pending[rec]})
			delete(pending, rec)
		}
	}
	for rec := 1; rec <= records; rec++ {
		if len(pending[rec]) > 0 {
			batches = append(batches, batch{record: rec, intents: pending[rec]})
		}
	}
	return batches, model
}

func maps(m modelRecord) modelRecord {
	out := make(modelRecord, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
