package zoho

import (
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/crmshare/crmshare/zoho/zohoemu"
)

// The emulator's dev credentials and the IDs of testSeed.
const (
	emuClientID     = "1000.DEVCLIENT"
	emuClientSecret = "dev-secret"
	emuRefreshToken = "1000.dev.refresh"

	integ   = "4150868000000225013" // the token's user, an administrator
	former  = "4150868000001309999" // disabled
	newHire = "4150868000001310001" // not confirmed
	deal    = "4150868000002515001" // owned by integ, shared with nobody
	deal2   = "4150868000002515002" // shared with user(1), read_only
	account = "4150868000000987001"
	contact = "4150868000001176057" // child of account
	lead    = "4150868000003000001" // Leads: outside the client's scopes
)

func user(i int) string  { return fmt.Sprintf("41508680000011%05d", i) }
func group(i int) string { return fmt.Sprintf("41508680000020%05d", i) }
func role(i int) string  { return fmt.Sprintf("41508680000021%05d", i) }

// testSeed is an org with n active users besides the integration user, six
// groups and six roles (one more than v8's caps), and a few records.
func testSeed(n int) *zohoemu.Seed {
	s := &zohoemu.Seed{
		Org: &zohoemu.Org{ID: "org-test", ConcurrencyLimit: 10},
		Clients: []zohoemu.Client{{
			ClientID: emuClientID, ClientSecret: emuClientSecret, RefreshToken: emuRefreshToken, UserID: integ,
			Scopes: []string{"ZohoCRM.share.deals.ALL", "ZohoCRM.share.accounts.ALL", "ZohoCRM.share.contacts.ALL", "ZohoCRM.users.READ"},
		}},
		Users: []zohoemu.User{
			{ID: integ, Email: "integration@acme.example", FullName: "Integration User", Status: "active", Confirm: true, Profile: "Administrator"},
			{ID: former, Email: "former.rep@acme.example", FullName: "Former Rep", Status: "disabled", Confirm: true},
			{ID: newHire, Email: "new.hire@acme.example", FullName: "New Hire", Status: "active", Confirm: false},
		},
		Records: []zohoemu.Record{
			{Module: "Deals", ID: deal, Name: "Acme renewal", Owner: integ},
			{Module: "Deals", ID: deal2, Name: "Acme expansion", Owner: integ,
				Shares: []zohoemu.Entry{{Type: "users", ID: user(1), Permission: "read_only"}}},
			{Module: "Accounts", ID: account, Name: "Acme Corp", Owner: integ},
			{Module: "Contacts", ID: contact, Name: "Patricia Boyle", Owner: integ, Parent: &zohoemu.Ref{Module: "Accounts", ID: account}},
			{Module: "Leads", ID: lead, Name: "A lead", Owner: integ},
		},
	}
	for i := 1; i <= n; i++ {
		s.Users = append(s.Users, zohoemu.User{
			ID: user(i), Email: fmt.Sprintf("User.%d@Acme.example", i), FullName: fmt.Sprintf("User %d", i), Status: "active", Confirm: true,
		})
	}
	for i := 1; i <= 6; i++ {
		s.Groups = append(s.Groups, zohoemu.Group{ID: group(i), Name: fmt.Sprintf("Group %d", i)})
		s.Roles = append(s.Roles, zohoemu.Role{ID: role(i), Name: fmt.Sprintf("Role %d", i)})
	}
	return s
}

// startEmu serves an emulator loaded with testSeed(12) unless cfg has a seed.
func startEmu(t testing.TB, cfg zohoemu.Config) (*zohoemu.Emulator, *httptest.Server) {
	t.Helper()
	if cfg.Seed == nil {
		cfg.Seed = testSeed(12)
	}
	emu, err := zohoemu.New(cfg)
	if err != nil {
		t.Fatalf("zohoemu.New: %v", err)
	}
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	return emu, srv
}

// emuClient returns a client for the emulator at url speaking version.
func emuClient(t testing.TB, url, version string, cfg Config) *Client {
	t.Helper()
	cfg.APIVersion = version
	cfg.ClientID, cfg.ClientSecret, cfg.RefreshToken = emuClientID, emuClientSecret, emuRefreshToken
	return mustClient(t, url, cfg)
}

var dialects = []string{"v2", "v2.1", "v8"}

func users(perm Permission, ids ...string) []Share {
	out := make([]Share, len(ids))
	for i, id := range ids {
		out[i] = Share{Recipient: Recipient{Type: RecipientUser, ID: id}, Permission: perm}
	}
	return out
}
