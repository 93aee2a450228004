package relay

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestAggregate(t *testing.T) {
	pfx := func(s string) []netip.Prefix {
		var out []netip.Prefix
		for _, f := range strings.Fields(s) {
			out = append(out, netip.MustParsePrefix(f))
		}
		return out
	}
	for _, tc := range []struct{ in, want string }{
		// 1:1 rules: /32s, several sharing an address (different PSIDs).
		{"198.51.100.0/32 198.51.100.1/32 198.51.100.1/32 198.51.100.2/32 198.51.100.3/32", "198.51.100.0/30"},
		// A whole /24 of /32s is one /24.
		{func() string {
			var b strings.Builder
			for i := 255; i >= 0; i-- {
				b.WriteString(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}).String() + "/32 ")
			}
			return b.String()
		}(), "192.0.2.0/24"},
		// Not siblings: 1 and 2 are in different /31s.
		{"198.51.100.1/32 198.51.100.2/32", "198.51.100.1/32 198.51.100.2/32"},
		// Inside another rule's prefix; the DMR apart.
		{"64:ff9b::/96 192.0.2.0/24 192.0.2.128/25 203.0.113.0/25 203.0.113.128/25", "192.0.2.0/24 203.0.113.0/24 64:ff9b::/96"},
		{"0.0.0.0/1 128.0.0.0/1", "0.0.0.0/0"},
	} {
		got := aggregate(pfx(tc.in))
		if !slices.Equal(got, pfx(tc.want)) {
			t.Errorf("aggregate(%.60s...) = %v, want %s", tc.in, got, tc.want)
		}
	}
}
