package mapt

import (
	"net/netip"
	"testing"
)

func FuzzParseRule(f *testing.F) {
	for _, s := range []string{
		"2001:db8::/40,192.0.2.0/24,16",
		"2001:db8:ce::/51,192.0.2.0/24,13,a=0,fmr",
		"2001:db8:12:3400::/56,192.0.2.18/32,0,a=6,k=8,psid=0x34",
		"2001:db8::/32,0.0.0.0/0,40,a=4",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRule(s)
		if err != nil {
			return
		}
		r2, err := ParseRule(r.String())
		if err != nil || r2 != r {
			t.Fatalf("String() %q does not round-trip: %+v %v", r.String(), r2, err)
		}
	})
}

// FuzzDeriveMap derives a binding from arbitrary rule parameters and
// end-user prefixes and checks that the forward and reverse mappings agree.
func FuzzDeriveMap(f *testing.F) {
	f.Add([]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0x12, 0x34, 0}, uint8(40), uint32(0xc0000200), uint8(24), uint8(16), uint8(6), uint8(56), uint16(1232))
	f.Add([]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0xce, 0x07, 0x74}, uint8(51), uint32(0xc0000200), uint8(24), uint8(13), uint8(0), uint8(64), uint16(41000))
	f.Fuzz(func(t *testing.T, pfx []byte, r6 uint8, v4 uint32, r4, ea, a, eupLen uint8, port uint16) {
		var b16 [16]byte
		copy(b16[:], pfx)
		rule := Rule{
			IPv6Prefix: netip.PrefixFrom(netip.AddrFrom16(b16), int(r6%129)).Masked(),
			IPv4Prefix: netip.PrefixFrom(u32v4(v4), int(r4%33)).Masked(),
			EABits:     int(ea % 49),
			PSIDOffset: int(a % 16),
		}
		if rule.Validate() != nil {
			return
		}
		eup := netip.PrefixFrom(netip.AddrFrom16(b16), int(eupLen%129))
		b, err := rule.Derive(eup)
		if err != nil {
			return
		}
		if b.IPv4.Bits() < 32 && b.EndUserPrefix.Bits() > 64 {
			// The prefix overwrote the interface ID's IPv4 host bits: a
			// documented limit of IPv4 prefix bindings.
			return
		}
		v4back, back, err := rule.MapIPv6(b.MAPAddress)
		if err != nil || v4back != b.IPv4.Addr() || back.PortSet != b.PortSet {
			t.Fatalf("MapIPv6(%s) = %s %v %v; binding %+v", b.MAPAddress, v4back, back.PortSet, err, b)
		}
		if !b.PortSet.Contains(port) {
			return
		}
		dst, _, err := rule.MapIPv4(b.IPv4.Addr(), port)
		if err != nil {
			t.Fatalf("MapIPv4(%s, %d): %v", b.IPv4.Addr(), port, err)
		}
		// The end-user prefix may be longer than the rule needs; the
		// forward mapping only knows the EA bits.
		if b.EndUserPrefix.Bits() == rule.EndUserPrefixLen() && dst != b.MAPAddress {
			t.Fatalf("MapIPv4(%s, %d) = %s, want %s", b.IPv4.Addr(), port, dst, b.MAPAddress)
		}
	})
}
