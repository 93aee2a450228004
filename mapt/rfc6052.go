package mapt

import (
	"fmt"
	"net/netip"
)

// ValidateDMR checks an RFC 6052 prefix (s2.2): length 32, 40, 48, 56, 64
// or 96, and the u-octet (bits 64-71) zero.
func ValidateDMR(p netip.Prefix) error {
	if !p.IsValid() || !p.Addr().Is6() || p.Addr().Is4In6() {
		return fmt.Errorf("mapt: dmr %s: not an IPv6 prefix", p)
	}
	switch p.Bits() {
	case 32, 40, 48, 56, 64, 96:
	default:
		return fmt.Errorf("mapt: dmr %s: length /%d is not one of RFC 6052's 32, 40, 48, 56, 64, 96", p, p.Bits())
	}
	if p != p.Masked() {
		return fmt.Errorf("mapt: dmr %s: host bits set (want %s)", p, p.Masked())
	}
	if p.Addr().As16()[8] != 0 {
		return fmt.Errorf("mapt: dmr %s: bits 64-71 (u-octet) must be zero", p)
	}
	return nil
}

// embedPositions lists the address octets that carry the IPv4 address for
// an RFC 6052 prefix length: the octets after the prefix, skipping octet 8.
func embedPositions(bits int) [4]int {
	var pos [4]int
	o := bits / 8
	for i := range pos {
		if o == 8 {
			o++
		}
		pos[i] = o
		o++
	}
	return pos
}

// Embed returns the IPv4-embedded IPv6 address of v4 under prefix p
// (RFC 6052 s2.2). p must pass ValidateDMR.
func Embed(p netip.Prefix, v4 netip.Addr) netip.Addr {
	a := p.Masked().Addr().As16()
	b := v4.As4()
	for i, o := range embedPositions(p.Bits()) {
		a[o] = b[i]
	}
	return netip.AddrFrom16(a)
}

// Extract returns the IPv4 address embedded in v6 under prefix p, and
// false when v6 is not inside p or its u-octet is not zero.
func Extract(p netip.Prefix, v6 netip.Addr) (netip.Addr, bool) {
	if !p.Contains(v6) {
		return netip.Addr{}, false
	}
	a := v6.As16()
	if p.Bits() < 96 && a[8] != 0 {
		return netip.Addr{}, false
	}
	var b [4]byte
	for i, o := range embedPositions(p.Bits()) {
		b[i] = a[o]
	}
	return netip.AddrFrom4(b), true
}
