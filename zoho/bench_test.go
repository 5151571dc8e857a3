package zoho

import (
	"testing"

	"github.com/crmshare/crmshare/zoho/zohoemu"
)

// BenchmarkShareRoundTrip measures one POST share through the whole client
// (limiter, cached token, encoding, HTTP over loopback, decoding) against the
// emulator. The record's shares are cleared between iterations, off the clock,
// so every POST succeeds.
func BenchmarkShareRoundTrip(b *testing.B) {
	for _, v := range []string{"v2", "v8"} {
		b.Run(v, func(b *testing.B) {
			emu, srv := startEmu(b, zohoemu.Config{ConcurrencyLimit: -1})
			c := emuClient(b, srv.URL, v, Config{})
			shares := users(PermissionReadWrite, user(2))
			ctx := b.Context()
			if err := c.CheckCredentials(ctx); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				b.StopTimer()
				if err := emu.SetShares("Deals", deal, nil); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				res, err := c.Share(ctx, "Deals", deal, shares)
				if err := firstErr(res, err); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
