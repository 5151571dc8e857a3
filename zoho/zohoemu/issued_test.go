package zohoemu

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestIssuedTokens(t *testing.T) {
	f := newFixture(t, nil)
	if got := f.emu.IssuedTokens(); len(got) != 0 {
		t.Fatalf("IssuedTokens before any refresh = %q, want none", got)
	}
	first := f.token(t)
	f.emu.ExpireTokens()
	second := f.token(t)
	f.emu.RevokeRefreshToken(devRefresh)
	f.emu.Reset()

	got := f.emu.IssuedTokens()
	if diff := cmp.Diff(got, []string{first, second}); diff != "" {
		t.Errorf("IssuedTokens after expiry, revocation and Reset (-got +want):\n%s", diff)
	}
	got[0] = "changed"
	if again := f.emu.IssuedTokens(); again[0] != first {
		t.Errorf("IssuedTokens shares its slice with the caller: first = %q", again[0])
	}
}
