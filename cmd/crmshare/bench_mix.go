package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/crmshare/crmshare/zoho/zohoemu"
)

// The bench's event types, each mapped by one of benchRules.
const (
	benchTypeGrant  = "bench.grant"  // grant data.user_id read_only on Deals/data.deal_id
	benchTypeRevoke = "bench.revoke" // revoke data.user_id on Deals/data.deal_id
	benchTypeSet    = "bench.set"    // make data.user_id the only direct share, read_write
	benchTypeAcct   = "bench.grant.account"
)

// benchRules are the rules every bench run uses, whatever --config says: the
// bench's events are made for them.
const benchRules = `
- name: bench-grant
  on: {type: bench.grant}
  action: grant
  module: Deals
  record_id: data.deal_id
  recipients:
    - user: data.user_id
      permission: read_only
- name: bench-grant-account
  on: {type: bench.grant.account}
  action: grant
  module: Accounts
  record_id: data.deal_id
  recipients:
    - user: data.user_id
      permission: read_only
- name: bench-revoke
  on: {type: bench.revoke}
  action: revoke
  module: Deals
  record_id: data.deal_id
  recipients:
    - user: data.user_id
- name: bench-set
  on: {type: bench.set}
  action: set
  module: Deals
  record_id: data.deal_id
  recipients:
    - user: data.user_id
      permission: read_write
`

// benchClassAction is the action of the intents of each class of the mixed
// mix, whose calls the service counts by action.
var benchClassAction = map[string]string{benchTypeGrant: "grant", benchTypeRevoke: "revoke", benchTypeSet: "set"}

// Mixes of --mix.
const (
	mixGrants = "grants" // first-time grants, one per record
	mixReplay = "replay" // events already applied: half in the ledger, half only in Zoho
	mixMixed  = "mixed"  // grants, revokes and sets over records that see several events
	mixHot    = "hot"    // bursts of 10 grants on one record
)

const (
	benchUsers       = 40
	benchIntegration = "4150868000000225013"
	benchSource      = "urn:crmshare:bench"
)

func benchDeal(i int) string { return fmt.Sprintf("4150868%012d", 500000000000+i) }
func benchUser(u int) string { return fmt.Sprintf("4150868%012d", 100000000+u) }

// benchEvent is one event of a mix.
type benchEvent struct {
	typ          string
	deal         string
	user         string
	inLedger     bool // replay: record it as applied before the run
	inZoho       bool // replay: share it in the emulator before the run
	class        string
	republishKey string // replay: publish under this Nats-Msg-Id instead of the event key
}

// benchPlan is what a mix publishes and what the emulator starts with. It
// generates its events one at a time, so a large backlog costs the bench no
// memory.
type benchPlan struct {
	mix string
	n   int
}

// newBenchPlan is the plan of n events of mix (one of the mix constants).
func newBenchPlan(mix string, n int) *benchPlan { return &benchPlan{mix: mix, n: n} }

// event returns the plan's event i (0 <= i < n).
func (p *benchPlan) event(i int) benchEvent {
	switch p.mix {
	case mixHot:
		// Bursts of 10 grants (ten users) on one record, one burst after
		// another, all in the backlog at once.
		return benchEvent{typ: benchTypeGrant, deal: benchDeal(i / 10), user: benchUser(i % 10), class: "hot_grant"}
	case mixReplay:
		// The first half was applied and recorded: republished under new
		// message IDs, the ledger drops them. The second half is in Zoho
		// but not in the ledger (say, applied by an older deployment): each
		// costs a refused POST and a read. They go to different modules so
		// their Zoho calls are counted apart.
		ev := benchEvent{typ: benchTypeGrant, deal: benchDeal(i), user: benchUser(i % benchUsers), inZoho: true}
		if i < p.n/2 {
			ev.inLedger, ev.class, ev.republishKey = true, "replay_in_ledger", "bench-republish-"+benchDeal(i)
		} else {
			ev.typ, ev.class = benchTypeAcct, "replay_in_zoho"
		}
		return ev
	case mixMixed:
		// About four events per record: mostly grants, some revokes and sets.
		recs := max(1, p.n/4)
		typ := benchTypeGrant
		switch i % 10 {
		case 3, 7:
			typ = benchTypeRevoke
		case 5:
			typ = benchTypeSet
		}
		return benchEvent{typ: typ, deal: benchDeal(i % recs), user: benchUser((i*7 + i/recs) % benchUsers), class: typ}
	default: // mixGrants
		return benchEvent{typ: benchTypeGrant, deal: benchDeal(i), user: benchUser(i % benchUsers), class: "first_grant"}
	}
}

// records returns the Deals and Accounts records the mix's events touch.
func (p *benchPlan) records() (deals, accts []string) {
	switch p.mix {
	case mixHot:
		for i := range max(1, (p.n+9)/10) {
			deals = append(deals, benchDeal(i))
		}
	case mixReplay:
		for i := range p.n {
			if i < p.n/2 {
				deals = append(deals, benchDeal(i))
			} else {
				accts = append(accts, benchDeal(i))
			}
		}
	case mixMixed:
		for i := range max(1, p.n/4) {
			deals = append(deals, benchDeal(i))
		}
	default:
		for i := range p.n {
			deals = append(deals, benchDeal(i))
		}
	}
	return deals, accts
}

// classes returns the plan's event classes in first-seen order with their
// event counts.
func (p *benchPlan) classes() (order []string, count map[string]int) {
	count = make(map[string]int)
	for i := range p.n {
		c := p.event(i).class
		if count[c] == 0 {
			order = append(order, c)
		}
		count[c]++
	}
	return order, count
}

// cloudEvent is the CloudEvent of e, numbered i.
func (e benchEvent) cloudEvent(i int, now time.Time) (event.Event, error) {
	ev := event.New()
	ev.SetID(fmt.Sprintf("bench-%08d", i))
	ev.SetSource(benchSource)
	ev.SetType(e.typ)
	ev.SetSubject("Deals/" + e.deal)
	ev.SetTime(now)
	if err := ev.SetData("application/json", map[string]string{"deal_id": e.deal, "user_id": e.user}); err != nil {
		return ev, fmt.Errorf("bench event data: %w", err)
	}
	return ev, nil
}

// benchCreds are per-run made-up OAuth credentials for the bench's emulator.
type benchCreds struct{ clientID, secret, refresh string }

func newBenchCreds() benchCreds {
	r := func() string {
		b := make([]byte, 12)
		_, _ = rand.Read(b) // never fails (crypto/rand)
		return hex.EncodeToString(b)
	}
	return benchCreds{clientID: "1000.BENCH", secret: r(), refresh: "1000." + r()}
}

// seed is the emulated org for p: an administrator the client acts as, the
// users the events name, and every record, with the shares the replay mix
// expects to find.
func (p *benchPlan) seed(cr benchCreds, concurrency int) *zohoemu.Seed {
	s := &zohoemu.Seed{
		Org: &zohoemu.Org{ID: "org-bench", ConcurrencyLimit: concurrency},
		Clients: []zohoemu.Client{{
			ClientID: cr.clientID, ClientSecret: cr.secret, RefreshToken: cr.refresh, UserID: benchIntegration,
			Scopes: []string{"ZohoCRM.share.deals.ALL", "ZohoCRM.share.accounts.ALL", "ZohoCRM.users.READ"},
		}},
		Users: []zohoemu.User{{ID: benchIntegration, Email: "integration@bench.example", FullName: "Integration User",
			Status: "active", Confirm: true, Profile: "Administrator"}},
	}
	for u := range benchUsers {
		s.Users = append(s.Users, zohoemu.User{ID: benchUser(u), Email: fmt.Sprintf("user%02d@bench.example", u),
			FullName: fmt.Sprintf("User %02d", u), Status: "active", Confirm: true})
	}
	shares := make(map[string][]zohoemu.Entry)
	for i := range p.n {
		if e := p.event(i); e.inZoho {
			shares[e.deal] = append(shares[e.deal], zohoemu.Entry{Type: "users", ID: e.user, Permission: "read_only"})
		}
	}
	deals, accts := p.records()
	for _, id := range deals {
		s.Records = append(s.Records, zohoemu.Record{Module: "Deals", ID: id, Name: "Deal " + id, Owner: benchIntegration, Shares: shares[id]})
	}
	for _, id := range accts {
		s.Records = append(s.Records, zohoemu.Record{Module: "Accounts", ID: id, Name: "Account " + id, Owner: benchIntegration, Shares: shares[id]})
	}
	return s
}
