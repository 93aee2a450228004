package mapt

import (
	"fmt"
	"net/netip"
)

// Binding is what one CE derives from its BMR and end-user prefix
// (RFC 7597 s5.2): its IPv4 address (or prefix), its port set and its MAP
// IPv6 address.
type Binding struct {
	Rule          Rule
	EndUserPrefix netip.Prefix
	// IPv4 is the CE's address (/32) or prefix (EA + r < 32).
	IPv4    netip.Prefix
	PortSet PortSet
	// MAPAddress is the CE's own MAP IPv6 address (RFC 7599 s6); for an
	// IPv4 prefix it embeds the prefix's first address.
	MAPAddress netip.Addr
}

// PSID returns the binding's PSID (right-aligned).
func (b Binding) PSID() uint16 { return b.PortSet.PSID }

// Derive computes the binding a CE with end-user prefix eup gets from rule
// r (RFC 7597 s5.2, RFC 7599 s6).
func (r Rule) Derive(eup netip.Prefix) (Binding, error) {
	if err := r.Validate(); err != nil {
		return Binding{}, err
	}
	if !eup.IsValid() || !eup.Addr().Is6() || eup.Addr().Is4In6() {
		return Binding{}, fmt.Errorf("mapt: end-user prefix %s: not an IPv6 prefix", eup)
	}
	eup = eup.Masked()
	if eup.Bits() < r.IPv6Prefix.Bits() || !r.IPv6Prefix.Contains(eup.Addr()) {
		return Binding{}, fmt.Errorf("mapt: rule %s: end-user prefix %s is outside ipv6-prefix: %w", r, eup, ErrNoMatch)
	}
	if eup.Bits() < r.EndUserPrefixLen() {
		return Binding{}, fmt.Errorf("mapt: rule %s: end-user prefix %s is shorter than rule prefix /%d + %d EA bits",
			r, eup, r.IPv6Prefix.Bits(), r.EABits)
	}
	ea := getBits(eup.Addr().As16(), r.IPv6Prefix.Bits(), r.EABits)
	v4, v4len, psid := r.splitEA(ea)
	b := Binding{
		Rule:          r,
		EndUserPrefix: eup,
		IPv4:          netip.PrefixFrom(v4, v4len),
		PortSet:       PortSet{PortParams: r.Params(), PSID: psid},
	}
	b.MAPAddress = mapAddress(b.mapPrefix(), v4, psid)
	// RFC 7597 s5.2, s6: the BR knows the end-user prefix only as far as
	// the rule goes (ipv6-prefix + EA bits), and builds the interface
	// identifier from there. A longer delegated prefix works only when
	// that address lies inside it; otherwise CE and BR would disagree.
	if eup.Bits() > r.EndUserPrefixLen() && !eup.Contains(b.MAPAddress) {
		return Binding{}, fmt.Errorf("mapt: rule %s: end-user prefix %s is longer than the rule's /%d (ipv6-prefix + EA bits) and the MAP address %s the BR derives lies outside it",
			r, eup, r.EndUserPrefixLen(), b.MAPAddress)
	}
	return b, nil
}

// mapPrefix is the end-user prefix as the rule defines it (ipv6-prefix +
// EA bits, RFC 7597 s5.2): what the BR can know, and so what the MAP
// address is built from.
func (b Binding) mapPrefix() netip.Prefix {
	return netip.PrefixFrom(b.EndUserPrefix.Addr(), b.Rule.EndUserPrefixLen()).Masked()
}

// MAPPrefixLen is the length of the end-user prefix the MAP address is
// built on (RFC 7599 s6: the prefix overwrites the interface identifier
// when it is longer than /64): the rule's, which may be shorter than the
// delegated prefix.
func (b Binding) MAPPrefixLen() int { return b.Rule.EndUserPrefixLen() }

// splitEA turns EA bits into the CE's IPv4 address/prefix and PSID.
func (r Rule) splitEA(ea uint64) (netip.Addr, int, uint16) {
	base := v4u32(r.IPv4Prefix.Addr())
	p := r.suffixBits()
	if r.EABits == 0 {
		return r.IPv4Prefix.Addr(), r.IPv4Prefix.Bits(), r.PSID
	}
	if r.EABits < p {
		suffix := uint32(ea) << (p - r.EABits)
		return u32v4(base | suffix), r.IPv4Prefix.Bits() + r.EABits, 0
	}
	k := r.EABits - p
	suffix := uint32(0)
	if p > 0 {
		suffix = uint32(ea >> k)
	}
	return u32v4(base | suffix), 32, uint16(ea & (1<<k - 1))
}

// mapAddress builds a MAP IPv6 address: end-user prefix, subnet ID 0 and
// interface ID 0:IPv4:PSID, the prefix overwriting the interface ID's
// leading bits when it is longer than /64 (RFC 7599 s6).
func mapAddress(eup netip.Prefix, v4 netip.Addr, psid uint16) netip.Addr {
	a := eup.Masked().Addr().As16()
	iid := uint64(v4u32(v4))<<16 | uint64(psid)
	start := 64
	if eup.Bits() > 64 {
		start = eup.Bits()
	}
	n := 128 - start
	if n > 0 {
		setBits(&a, start, n, iid&(1<<n-1))
	}
	return netip.AddrFrom16(a)
}

// AddressFor returns the MAP IPv6 address carrying the IPv4 address v4 of
// this CE. For an IPv4 prefix binding it embeds the full address (see the
// package documentation); otherwise it equals MAPAddress.
func (b Binding) AddressFor(v4 netip.Addr) netip.Addr {
	return mapAddress(b.mapPrefix(), v4, b.PortSet.PSID)
}

// MapIPv4 maps an IPv4 destination and port (or ICMP identifier) inside
// the rule to the MAP IPv6 address of the CE that owns it (RFC 7599 s8.4,
// RFC 7597 s5.3). It returns the CE's binding as well.
func (r Rule) MapIPv4(v4 netip.Addr, port uint16) (netip.Addr, Binding, error) {
	if !v4.Is4() || !r.IPv4Prefix.Contains(v4) {
		return netip.Addr{}, Binding{}, fmt.Errorf("mapt: rule %s: %s is outside ipv4-prefix: %w", r, v4, ErrNoMatch)
	}
	params := r.Params()
	psid := params.PSIDOf(port)
	if r.EABits == 0 {
		if r.PSIDLen > 0 && psid != r.PSID {
			return netip.Addr{}, Binding{}, fmt.Errorf("mapt: rule %s: port %d belongs to psid %d: %w", r, port, psid, ErrNoMatch)
		}
		if !(PortSet{PortParams: params, PSID: psid}).Contains(port) {
			return netip.Addr{}, Binding{}, fmt.Errorf("mapt: rule %s: port %d is in no port set (A = 0): %w", r, port, ErrNoMatch)
		}
		b, err := r.Derive(r.IPv6Prefix)
		if err != nil {
			return netip.Addr{}, Binding{}, err
		}
		return b.AddressFor(v4), b, nil
	}
	p := r.suffixBits()
	host := uint64(v4u32(v4)) & (1<<p - 1)
	var ea uint64
	if r.EABits < p {
		ea = host >> (p - r.EABits)
	} else {
		k := r.EABits - p
		ea = host<<k | uint64(psid)
		if !(PortSet{PortParams: params, PSID: psid}).Contains(port) {
			return netip.Addr{}, Binding{}, fmt.Errorf("mapt: rule %s: port %d is in no port set (A = 0): %w", r, port, ErrNoMatch)
		}
	}
	a := r.IPv6Prefix.Addr().As16()
	setBits(&a, r.IPv6Prefix.Bits(), r.EABits, ea)
	b, err := r.Derive(netip.PrefixFrom(netip.AddrFrom16(a), r.EndUserPrefixLen()))
	if err != nil {
		return netip.Addr{}, Binding{}, err
	}
	return b.AddressFor(v4), b, nil
}

// MapIPv6 maps a MAP IPv6 address inside the rule back to the CE binding
// it belongs to and the IPv4 address it carries (RFC 7599 s8.3). For
// shared and full addresses the IPv4 address comes from the EA bits; for
// an IPv4 prefix the host part comes from the interface identifier.
func (r Rule) MapIPv6(v6 netip.Addr) (netip.Addr, Binding, error) {
	if !v6.Is6() || !r.IPv6Prefix.Contains(v6) {
		return netip.Addr{}, Binding{}, fmt.Errorf("mapt: rule %s: %s is outside ipv6-prefix: %w", r, v6, ErrNoMatch)
	}
	b, err := r.Derive(netip.PrefixFrom(v6, r.EndUserPrefixLen()))
	if err != nil {
		return netip.Addr{}, Binding{}, err
	}
	v4 := b.IPv4.Addr()
	if b.IPv4.Bits() < 32 {
		iidV4 := uint32(getBits(v6.As16(), 80, 32))
		host := uint32(1)<<(32-b.IPv4.Bits()) - 1
		v4 = u32v4(v4u32(v4) | iidV4&host)
	}
	return v4, b, nil
}
