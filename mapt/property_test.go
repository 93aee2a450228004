package mapt

import (
	"net/netip"
	"testing"
)

// TestWholeDomainRoundTrip walks every CE of small domains: every port of
// every PSID maps forward to the CE's MAP address and back, every MAP
// address maps back to its binding, and every port has exactly one owner.
func TestWholeDomainRoundTrip(t *testing.T) {
	for _, s := range []string{
		"2001:db8::/40,192.0.2.0/28,8,a=6",      // k = 4, 63 ranges
		"2001:db8::/40,192.0.2.0/28,8,a=0",      // k = 4, one range
		"2001:db8::/40,192.0.2.0/30,9,a=3",      // k = 7
		"2001:db8::/40,192.0.2.0/30,2",          // full addresses
		"2001:db8:ce::/51,192.0.2.0/29,8,a=0",   // the seed's shape, fewer CEs
		"2001:db8::/40,192.0.2.0/31,12,a=4,fmr", // k = 11, a + k = 15
	} {
		r := MustParseRule(s)
		t.Run(s, func(t *testing.T) {
			n := 1 << r.EABits
			owner := make(map[[2]uint32]uint64) // (ipv4, port) -> EA
			for ea := 0; ea < n; ea++ {
				a := r.IPv6Prefix.Addr().As16()
				setBits(&a, r.IPv6Prefix.Bits(), r.EABits, uint64(ea))
				eup := netip.PrefixFrom(netip.AddrFrom16(a), r.EndUserPrefixLen())
				b, err := r.Derive(eup)
				if err != nil {
					t.Fatal(err)
				}
				v4, back, err := r.MapIPv6(b.MAPAddress)
				if err != nil || v4 != b.IPv4.Addr() || back.PortSet != b.PortSet || back.EndUserPrefix != eup {
					t.Fatalf("MapIPv6(%s) = %s %+v %v, want %v", b.MAPAddress, v4, back.PortSet, err, b.PortSet)
				}
				count := 0
				for i := 0; ; i++ {
					port, ok := b.PortSet.Port(i)
					if !ok {
						break
					}
					count++
					if !b.PortSet.Contains(port) || b.PortSet.PSIDOf(port) != b.PSID() && b.PortSet.Shared() {
						t.Fatalf("port %d from Port(%d) not in set %v", port, i, b.PortSet)
					}
					dst, fb, err := r.MapIPv4(b.IPv4.Addr(), port)
					if err != nil || dst != b.MAPAddress || fb.PortSet != b.PortSet {
						t.Fatalf("MapIPv4(%s, %d) = %s %v, want %s", b.IPv4.Addr(), port, dst, err, b.MAPAddress)
					}
					key := [2]uint32{v4u32(b.IPv4.Addr()), uint32(port)}
					if prev, dup := owner[key]; dup {
						t.Fatalf("%s port %d owned by EA %d and %d", b.IPv4.Addr(), port, prev, ea)
					}
					owner[key] = uint64(ea)
				}
				if count != b.PortSet.Count() {
					t.Fatalf("Port() yielded %d, Count() = %d", count, b.PortSet.Count())
				}
				total := 0
				for _, rg := range b.PortSet.Ranges() {
					total += rg.Size()
				}
				if total != count {
					t.Fatalf("ranges hold %d ports, Count() = %d", total, count)
				}
			}
			// Every port of every address has one owner, except A = 0.
			addrs := 1 << (32 - r.IPv4Prefix.Bits())
			if r.EABits < 32-r.IPv4Prefix.Bits() {
				return
			}
			excluded := 0
			if k := r.SharingBits(); k > 0 && r.PSIDOffset > 0 {
				excluded = 1 << (16 - r.PSIDOffset)
			}
			if want := addrs * (65536 - excluded); len(owner) != want {
				t.Fatalf("%d (address, port) pairs owned, want %d", len(owner), want)
			}
		})
	}
}

// TestPrefixBindingCarriesHost checks the documented choice for IPv4
// prefix bindings: the full IPv4 address survives 4->6->4.
func TestPrefixBindingCarriesHost(t *testing.T) {
	r := MustParseRule("2001:db8::/40,10.0.0.0/8,16")
	b, err := r.Derive(netip.MustParsePrefix("2001:db8:12:3400::/56"))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"10.18.52.0", "10.18.52.1", "10.18.52.77", "10.18.52.255"} {
		v4 := netip.MustParseAddr(h)
		dst, _, err := r.MapIPv4(v4, 80)
		if err != nil || dst != b.AddressFor(v4) {
			t.Fatalf("MapIPv4(%s) = %s, %v", v4, dst, err)
		}
		back, _, err := r.MapIPv6(dst)
		if err != nil || back != v4 {
			t.Fatalf("MapIPv6(%s) = %s, %v; want %s", dst, back, err, v4)
		}
	}
}

func TestPSIDOfEveryPort(t *testing.T) {
	for a := uint8(0); a <= 8; a++ {
		for k := uint8(1); a+k <= 16 && k <= 8; k++ {
			p := PortParams{Offset: a, Len: k}
			counts := make([]int, 1<<k)
			for port := 0; port < 65536; port++ {
				psid := p.PSIDOf(uint16(port))
				s := PortSet{PortParams: p, PSID: psid}
				if (PortSet{PortParams: p, PSID: psid}).Contains(uint16(port)) {
					counts[psid]++
				} else if a == 0 || port>>(16-a) != 0 {
					t.Fatalf("a=%d k=%d: port %d not in its own PSID %d set", a, k, port, psid)
				}
				_ = s
			}
			for psid, c := range counts {
				if want := (PortSet{PortParams: p, PSID: uint16(psid)}).Count(); c != want {
					t.Fatalf("a=%d k=%d psid %d: %d ports, Count() = %d", a, k, psid, c, want)
				}
			}
		}
	}
}

// TestEveryAddressAndLongPrefix walks small domains of prefix CEs and
// shared addresses: every address of a CE's IPv4 prefix maps to the MAP
// address the CE uses for it and back to the same binding; delegated
// prefixes longer than the rule's end-user prefix derive the same MAP
// address the BR does when they contain it, and are refused when not.
func TestEveryAddressAndLongPrefix(t *testing.T) {
	for _, s := range []string{
		"2001:db8::/40,192.0.2.0/24,6",      // /30 per CE
		"2001:db8::/58,192.0.2.0/28,2",      // /30 per CE, /60 end-user prefixes
		"2001:db8::/40,192.0.2.0/28,8,a=6",  // shared, /48
		"2001:db8::/56,192.0.2.0/28,12,a=4", // shared, /68: the prefix overwrites the IID
	} {
		r := MustParseRule(s)
		t.Run(s, func(t *testing.T) {
			for ea := 0; ea < 1<<r.EABits; ea++ {
				a := r.IPv6Prefix.Addr().As16()
				setBits(&a, r.IPv6Prefix.Bits(), r.EABits, uint64(ea))
				base := netip.PrefixFrom(netip.AddrFrom16(a), r.EndUserPrefixLen())
				b, err := r.Derive(base)
				if err != nil {
					t.Fatal(err)
				}
				for v4 := b.IPv4.Addr(); b.IPv4.Contains(v4); v4 = v4.Next() {
					m6 := b.AddressFor(v4)
					port, _ := b.PortSet.Port(0)
					fwd, _, err := r.MapIPv4(v4, port)
					if err != nil || fwd != m6 {
						t.Fatalf("%s: CE uses %s, BR maps to %s (%v)", v4, m6, fwd, err)
					}
					back, bb, err := r.MapIPv6(m6)
					if err != nil || back != v4 || bb.MAPAddress != b.MAPAddress {
						t.Fatalf("%s: BR maps %s back to %s %s (%v)", v4, m6, back, bb.MAPAddress, err)
					}
				}
				for l := r.EndUserPrefixLen() + 1; l <= 128; l += 7 {
					for _, inside := range []bool{true, false} {
						p := netip.PrefixFrom(b.MAPAddress, l).Masked()
						if !inside {
							// Flip the last bit of the longer prefix.
							x := p.Addr().As16()
							x[(l-1)/8] ^= 0x80 >> ((l - 1) % 8)
							p = netip.PrefixFrom(netip.AddrFrom16(x), l)
						}
						lb, err := r.Derive(p)
						switch {
						case inside && (err != nil || lb.MAPAddress != b.MAPAddress):
							t.Fatalf("/%d containing %s: %s, %v", l, b.MAPAddress, lb.MAPAddress, err)
						case !inside && err == nil:
							t.Fatalf("/%d %s without %s accepted: %s", l, p, b.MAPAddress, lb.MAPAddress)
						}
					}
				}
			}
		})
	}
}
