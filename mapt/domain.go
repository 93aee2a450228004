package mapt

import (
	"fmt"
	"net/netip"
)

// Domain is a MAP domain (RFC 7597 s3): its mapping rules and the Default
// Mapping Rule, the BR's RFC 6052 prefix (RFC 7599 s5.1).
type Domain struct {
	Name  string
	Rules []Rule
	DMR   netip.Prefix
}

// Validate checks every rule, the DMR, and that no two rules claim the same
// IPv6 prefix or the same IPv4 address and port.
func (d Domain) Validate() error {
	if err := ValidateDMR(d.DMR); err != nil {
		return err
	}
	for i, r := range d.Rules {
		if err := r.Validate(); err != nil {
			return err
		}
		for _, o := range d.Rules[:i] {
			if err := Overlap(o, r); err != nil {
				return err
			}
		}
	}
	return nil
}

// Overlap reports two rules that would map one IPv6 prefix or one IPv4
// address and port two ways.
func Overlap(a, b Rule) error {
	if a.IPv6Prefix == b.IPv6Prefix {
		return fmt.Errorf("mapt: rule %s: ipv6-prefix %s is also the prefix of rule %s", b, b.IPv6Prefix, a)
	}
	if !a.IPv4Prefix.Overlaps(b.IPv4Prefix) {
		return nil
	}
	// Rules for one shared address that differ only in PSID (1:1 mode with
	// sharing, RFC 7597 s5.1 EA = 0) split its ports; they do not collide.
	if a.EABits == 0 && b.EABits == 0 && a.IPv4Prefix == b.IPv4Prefix &&
		a.PSIDLen > 0 && a.PSIDLen == b.PSIDLen && a.PSIDOffset == b.PSIDOffset && a.PSID != b.PSID {
		return nil
	}
	return fmt.Errorf("mapt: rule %s: ipv4-prefix %s overlaps rule %s", b, b.IPv4Prefix, a)
}

// SelectBMR picks the Basic Mapping Rule for an end-user prefix: the rule
// whose IPv6 prefix is the longest match (RFC 7598 s4.1, RFC 7597 s5.2).
// Rules that do not contain the prefix are skipped.
func SelectBMR(rules []Rule, eup netip.Prefix) (Rule, error) {
	best := -1
	for i, r := range rules {
		if r.IPv6Prefix.Bits() <= eup.Bits() && r.IPv6Prefix.Contains(eup.Addr()) &&
			(best < 0 || r.IPv6Prefix.Bits() > rules[best].IPv6Prefix.Bits()) {
			best = i
		}
	}
	if best < 0 {
		return Rule{}, fmt.Errorf("mapt: end-user prefix %s: %w", eup, ErrNoMatch)
	}
	return rules[best], nil
}

// Derive selects the BMR for eup among the domain's rules and derives the
// CE binding.
func (d Domain) Derive(eup netip.Prefix) (Binding, error) {
	r, err := SelectBMR(d.Rules, eup)
	if err != nil {
		return Binding{}, err
	}
	return r.Derive(eup)
}

// FMRs returns the rules with the F flag (RFC 7598 s4.1): the ones a CE
// uses for mesh forwarding.
func (d Domain) FMRs() []Rule {
	var out []Rule
	for _, r := range d.Rules {
		if r.FMR {
			out = append(out, r)
		}
	}
	return out
}

// MatchIPv4 returns the rule for an IPv4 address and port: the longest
// IPv4-prefix match among rules whose port sets can hold the port
// (RFC 7599 s8.1, s8.4).
func MatchIPv4(rules []Rule, v4 netip.Addr, port uint16) (Rule, bool) {
	best := -1
	for i, r := range rules {
		if !r.IPv4Prefix.Contains(v4) {
			continue
		}
		if r.EABits == 0 && r.PSIDLen > 0 && r.Params().PSIDOf(port) != r.PSID {
			continue
		}
		if best < 0 || r.IPv4Prefix.Bits() > rules[best].IPv4Prefix.Bits() {
			best = i
		}
	}
	if best < 0 {
		return Rule{}, false
	}
	return rules[best], true
}

// MatchIPv6 returns the rule whose IPv6 prefix is the longest match for
// addr (RFC 7599 s8.2, s8.3).
func MatchIPv6(rules []Rule, addr netip.Addr) (Rule, bool) {
	best := -1
	for i, r := range rules {
		if r.IPv6Prefix.Contains(addr) && (best < 0 || r.IPv6Prefix.Bits() > rules[best].IPv6Prefix.Bits()) {
			best = i
		}
	}
	if best < 0 {
		return Rule{}, false
	}
	return rules[best], true
}

// MapIPv4 maps an IPv4 address and port (or ICMP echo identifier) to the
// MAP IPv6 address of the CE that owns it, using the longest matching rule.
func MapIPv4(rules []Rule, v4 netip.Addr, port uint16) (netip.Addr, Binding, error) {
	r, ok := MatchIPv4(rules, v4, port)
	if !ok {
		return netip.Addr{}, Binding{}, fmt.Errorf("mapt: %s port %d: %w", v4, port, ErrNoMatch)
	}
	return r.MapIPv4(v4, port)
}

// MapIPv6 maps a CE's MAP IPv6 address to its IPv4 address and binding,
// using the longest matching rule.
func MapIPv6(rules []Rule, v6 netip.Addr) (netip.Addr, Binding, error) {
	r, ok := MatchIPv6(rules, v6)
	if !ok {
		return netip.Addr{}, Binding{}, fmt.Errorf("mapt: %s: %w", v6, ErrNoMatch)
	}
	return r.MapIPv6(v6)
}
