package handlers

import (
	"context"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/crmshare/crmshare/zoho"
	"github.com/crmshare/crmshare/zoho/zohoemu"
)

// The emulated org: the integration user owns every record; users uid(1..n)
// are active and confirmed.
const (
	integrationUser = "4150868000000225013"
	disabledUser    = "4150868000001900000"
	unconfirmedUser = "4150868000001900001"
	testGroup       = "4150868000003000001"
	testRole        = "4150868000003000101"
	accountID       = "4150868000002500000" // Accounts: the parent of contactID
	contactID       = "4150868000002500001" // Contacts: inherits the account's related shares
	visibleDealID   = "4150868000002500002" // Deals: uid(1) sees it through the role hierarchy
)

var versions = []string{"v2", "v2.1", "v8"}

func uid(n int) string   { return fmt.Sprintf("4150868000001%06d", n) }
func rid(n int) string   { return fmt.Sprintf("4150868000002%06d", n) }
func email(n int) string { return fmt.Sprintf("user%02d@acme.example", n) }

// testSeed is an org with users active users and deals Deals records rid(1..deals),
// plus an account with a child contact and a deal visible to uid(1).
func testSeed(users, deals int) *zohoemu.Seed {
	s := &zohoemu.Seed{
		Org: &zohoemu.Org{ID: "org-test"},
		Clients: []zohoemu.Client{{
			ClientID: "1000.DEVCLIENT", ClientSecret: "dev-secret", RefreshToken: "1000.dev.refresh",
			UserID: integrationUser,
			Scopes: []string{"ZohoCRM.share.deals.ALL", "ZohoCRM.share.accounts.ALL", "ZohoCRM.share.contacts.ALL", "ZohoCRM.users.READ"},
		}},
		Users: []zohoemu.User{
			{ID: integrationUser, Email: "integration@acme.example", FullName: "Integration User", Status: "active", Confirm: true, Profile: "Administrator"},
			{ID: disabledUser, Email: "former@acme.example", FullName: "Former Rep", Status: "disabled", Confirm: true},
			{ID: unconfirmedUser, Email: "new.hire@acme.example", FullName: "New Hire", Status: "active", Confirm: false},
		},
		Groups: []zohoemu.Group{{ID: testGroup, Name: "EMEA Sales"}},
		Roles:  []zohoemu.Role{{ID: testRole, Name: "Sales Manager"}},
		Records: []zohoemu.Record{
			{Module: "Accounts", ID: accountID, Name: "Acme Corp", Owner: integrationUser},
			{Module: "Contacts", ID: contactID, Name: "Patricia Boyle", Owner: integrationUser,
				Parent: &zohoemu.Ref{Module: "Accounts", ID: accountID}},
			{Module: "Deals", ID: visibleDealID, Name: "Visible deal", Owner: integrationUser, VisibleTo: []string{uid(1)}},
		},
	}
	for n := 1; n <= users; n++ {
		s.Users = append(s.Users, zohoemu.User{ID: uid(n), Email: email(n), FullName: fmt.Sprintf("User %02d", n), Status: "active", Confirm: true})
	}
	for n := 1; n <= deals; n++ {
		s.Records = append(s.Records, zohoemu.Record{Module: "Deals", ID: rid(n), Name: fmt.Sprintf("Deal %d", n), Owner: integrationUser})
	}
	return s
}

// testEnv is a Handler on the real zoho client, talking to the emulator over
// loopback HTTP, with its spans and metrics recorded.
type testEnv struct {
	emu     *zohoemu.Emulator
	client  *zoho.Client
	h       *Handler
	spans   *tracetest.SpanRecorder
	metrics *sdkmetric.ManualReader
}

func newTestEnv(tb testing.TB, version string, seed *zohoemu.Seed) *testEnv {
	tb.Helper()
	emu, err := zohoemu.New(zohoemu.Config{Seed: seed})
	if err != nil {
		tb.Fatalf("zohoemu.New: %v", err)
	}
	srv := httptest.NewServer(emu)
	tb.Cleanup(srv.Close)
	zc, err := zoho.NewClient(zoho.Config{
		APIVersion: version, APIURL: srv.URL, AccountsURL: srv.URL,
		ClientID: "1000.DEVCLIENT", ClientSecret: "dev-secret", RefreshToken: "1000.dev.refresh",
		MaxConcurrency: 32,
	})
	if err != nil {
		tb.Fatalf("zoho.NewClient: %v", err)
	}
	spans := tracetest.NewSpanRecorder()
	reader := sdkmetric.NewManualReader()
	h, err := New(Config{
		Mapper:         mapperFunc(nil),
		Sharer:         zc,
		TracerProvider: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)),
		MeterProvider:  sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)),
	})
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return &testEnv{emu: emu, client: zc, h: h, spans: spans, metrics: reader}
}

// warmUsers fills the client's users cache so that share-call counts are not
// mixed with the one users-list fetch.
func (e *testEnv) warmUsers(tb testing.TB) {
	tb.Helper()
	if _, err := e.client.UserByID(tb.Context(), uid(1)); err != nil {
		tb.Fatalf("UserByID: %v", err)
	}
	e.emu.ResetRequests()
}

// setShares changes a record's direct shares by hand, as a person in Zoho's UI.
func (e *testEnv) setShares(tb testing.TB, module, id string, entries ...zohoemu.Entry) {
	tb.Helper()
	if err := e.emu.SetShares(module, id, entries); err != nil {
		tb.Fatalf("SetShares %s/%s: %v", module, id, err)
	}
}

// shareCalls counts the emulator's share-endpoint requests by method.
func shareCalls(st zohoemu.RequestStats) Calls {
	var c Calls
	for route, n := range st.ByRoute {
		if !strings.Contains(route, "/actions/share") {
			continue
		}
		switch strings.SplitN(route, " ", 2)[0] {
		case "GET":
			c.Get += n
		case "POST":
			c.Post += n
		case "PUT":
			c.Put += n
		case "DELETE":
			c.Delete += n
		}
	}
	return c
}

func entry(n int, perm string, related bool) zohoemu.Entry {
	return zohoemu.Entry{Type: "users", ID: uid(n), Permission: perm, ShareRelated: related}
}

func sortEntries(es []zohoemu.Entry) []zohoemu.Entry {
	es = slices.Clone(es)
	slices.SortFunc(es, func(a, b zohoemu.Entry) int {
		return strings.Compare(a.Type+a.ID, b.Type+b.ID)
	})
	return es
}

// user is a grant for uid(n).
func user(n int, p zoho.Permission, related bool) Grant {
	return Grant{Recipient: zoho.Recipient{Type: zoho.RecipientUser, ID: uid(n)}, Permission: p, ShareRelated: related}
}

func intent(a Action, module, id string, gs ...Grant) Intent {
	return Intent{Rule: "rule-" + a.String(), Module: module, RecordID: id, Action: a, Recipients: gs}
}

// mapperFunc adapts a func to Mapper; Keys returns the intents' keys.
type mapperFunc func(ev event.Event) ([]Intent, error)

func (f mapperFunc) Map(ev event.Event) ([]Intent, error) {
	if f == nil {
		return nil, nil
	}
	return f(ev)
}

func (f mapperFunc) Keys(ev event.Event) []string {
	ins, _ := f.Map(ev)
	var keys []string
	for _, in := range ins {
		if !slices.Contains(keys, in.Key()) {
			keys = append(keys, in.Key())
		}
	}
	return keys
}

// sharerFuncs scripts a Sharer for failures the emulator cannot produce.
type sharerFuncs struct {
	share  func(ctx context.Context, module, id string, s []zoho.Share) ([]zoho.Result, error)
	get    func(ctx context.Context, module, id string) ([]zoho.SharedEntry, error)
	update func(ctx context.Context, module, id string, s []zoho.Share) ([]zoho.Result, error)
	revoke func(ctx context.Context, module, id string) error
}

func (f sharerFuncs) Share(ctx context.Context, m, id string, s []zoho.Share) ([]zoho.Result, error) {
	return f.share(ctx, m, id, s)
}
func (f sharerFuncs) SharedWith(ctx context.Context, m, id string) ([]zoho.SharedEntry, error) {
	return f.get(ctx, m, id)
}
func (f sharerFuncs) UpdateShares(ctx context.Context, m, id string, s []zoho.Share) ([]zoho.Result, error) {
	return f.update(ctx, m, id, s)
}
func (f sharerFuncs) RevokeAll(ctx context.Context, m, id string) error { return f.revoke(ctx, m, id) }
