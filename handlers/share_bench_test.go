package handlers

import (
	"fmt"
	"testing"

	"github.com/crmshare/crmshare/zoho/zohoemu"
)

// TestCallsPerIntent measures, with the emulator's request counts, the Zoho
// share calls a realistic mix of intents costs. First-time grants must cost one
// call each; the rest are reported.
func TestCallsPerIntent(t *testing.T) {
	const records = 10
	for _, version := range versions {
		t.Run(version, func(t *testing.T) {
			env := newTestEnv(t, version, testSeed(6, records))
			env.warmUsers(t)
			var firstTime []Intent
			for n := 1; n <= records; n++ {
				firstTime = append(firstTime, intent(ActionGrant, "Deals", rid(n), user(1, rw, true)))
				firstTime = append(firstTime, intent(ActionGrant, "Deals", rid(n), user(2, ro, false)))
			}
			var revokes, lastRevokes, sets, changes []Intent
			for n := 1; n <= records; n++ {
				changes = append(changes, intent(ActionGrant, "Deals", rid(n), user(2, fa, false)))
				revokes = append(revokes, intent(ActionRevoke, "Deals", rid(n), user(1, 0, false)))
				sets = append(sets, intent(ActionSet, "Deals", rid(n), user(2, fa, false)))
				lastRevokes = append(lastRevokes, intent(ActionRevoke, "Deals", rid(n), user(2, 0, false)))
			}
			phases := []struct {
				name    string
				intents []Intent
				max     float64 // most share calls per intent allowed
			}{
				{"first-time grant", firstTime, 1},
				{"repeated grant", firstTime, 2},
				{"grant changing permission", changes, 3},
				{"revoke, others remain", revokes, 2},
				{"set already in place", sets, 1},
				{"revoke of the last user", lastRevokes, 2},
				{"revoke of an absent user", lastRevokes, 1},
			}
			for _, p := range phases {
				env.emu.ResetRequests()
				for _, in := range p.intents {
					// One intent per event, as the consumer would deliver them.
					if _, err := env.h.ApplyIntents(t.Context(), []Intent{in}); err != nil {
						t.Fatalf("%s: %v", p.name, err)
					}
				}
				c := shareCalls(env.emu.Requests())
				per := float64(c.Share()) / float64(len(p.intents))
				t.Logf("%-28s %5.2f share calls per intent (GET %d, POST %d, PUT %d, DELETE %d over %d intents)",
					p.name, per, c.Get, c.Post, c.Put, c.Delete, len(p.intents))
				if per > p.max {
					t.Errorf("%s: %.2f share calls per intent, want at most %.0f", p.name, per, p.max)
				}
			}
		})
	}
}

// BenchmarkApplyIntent measures carrying out one intent through the real client
// against the emulator over loopback HTTP (latency 0).
func BenchmarkApplyIntent(b *testing.B) {
	three := []zohoemu.Entry{entry(1, "read_only", false), entry(2, "read_write", true), entry(3, "full_access", false)}
	cases := []struct {
		name   string
		before []zohoemu.Entry // restored, untimed, before each run
		in     Intent
	}{
		{"grant first time", nil, intent(ActionGrant, "Deals", rid(1), user(1, rw, false))},
		{"grant repeated", three, intent(ActionGrant, "Deals", rid(1), user(1, ro, false))},
		{"revoke", three, intent(ActionRevoke, "Deals", rid(1), user(2, 0, false))},
		{"set unchanged", three, intent(ActionSet, "Deals", rid(1), user(1, ro, false), user(2, rw, true), user(3, fa, false))},
	}
	for _, version := range []string{"v2", "v8"} {
		for _, c := range cases {
			b.Run(fmt.Sprintf("%s/%s", version, c.name), func(b *testing.B) {
				env := newTestEnv(b, version, testSeed(3, 1))
				env.warmUsers(b)
				intents := []Intent{c.in}
				b.ReportAllocs()
				for b.Loop() {
					b.StopTimer()
					env.setShares(b, "Deals", rid(1), c.before...)
					b.StartTimer()
					if _, err := env.h.ApplyIntents(b.Context(), intents); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
