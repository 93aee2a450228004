package mapt

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// DefaultPSIDOffset is the PSID offset a used when a rule does not state
// one (RFC 7597 s5.1, RFC 7598 s4.5).
const DefaultPSIDOffset = 6

// MaxEABits is the largest EA-bits length: 32 IPv4 suffix bits plus a
// 16-bit PSID (RFC 7598 s4.1 allows 0-48).
const MaxEABits = 48

// Rule is a MAP mapping rule (RFC 7597 s5). A rule with EA-bits length 0
// carries its PSID length and PSID explicitly (from S46_PORTPARAMS); for
// other rules the PSID length follows from the EA bits and PSIDLen is
// either 0 or that same value.
type Rule struct {
	IPv6Prefix netip.Prefix // rule IPv6 prefix
	IPv4Prefix netip.Prefix // rule IPv4 prefix
	EABits     int          // EA-bits length o, 0-48
	PSIDOffset int          // a, 0-15
	PSIDLen    int          // k, explicit only for EA = 0 rules
	PSID       uint16       // right-aligned, for EA = 0 rules
	FMR        bool         // forwarding mapping rule (S46 F flag)
}

// ErrNoMatch reports that no rule matches an address or prefix.
var ErrNoMatch = errors.New("mapt: no matching rule")

// suffixBits is p, the number of IPv4 address bits a CE takes from its EA bits.
func (r Rule) suffixBits() int { return 32 - r.IPv4Prefix.Bits() }

// SharingBits returns k, the PSID length the rule gives every CE.
func (r Rule) SharingBits() int {
	if r.EABits == 0 {
		return r.PSIDLen
	}
	if k := r.EABits - r.suffixBits(); k > 0 {
		return k
	}
	return 0
}

// nonUnicast are the IPv4 ranges a rule may not hand out: they are no
// unicast space a host can be given (RFC 1122 s3.2.1.3, RFC 5735).
var nonUnicast = []struct {
	p    netip.Prefix
	what string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "this network"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved, with the limited broadcast address"},
}

// EndUserPrefixLen is the shortest end-user prefix the rule can derive a
// binding from: rule IPv6 prefix length + EA bits.
func (r Rule) EndUserPrefixLen() int { return r.IPv6Prefix.Bits() + r.EABits }

// Validate checks the rule's parameters. The error names the rule and the
// offending field.
func (r Rule) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("mapt: rule %s: %s", r, fmt.Sprintf(format, args...))
	}
	switch {
	case !r.IPv6Prefix.IsValid() || !r.IPv6Prefix.Addr().Is6() || r.IPv6Prefix.Addr().Is4In6():
		return bad("ipv6-prefix: not an IPv6 prefix")
	case r.IPv6Prefix != r.IPv6Prefix.Masked():
		return bad("ipv6-prefix: host bits set (want %s)", r.IPv6Prefix.Masked())
	case !r.IPv4Prefix.IsValid() || !r.IPv4Prefix.Addr().Is4():
		return bad("ipv4-prefix: not an IPv4 prefix")
	case r.IPv4Prefix != r.IPv4Prefix.Masked():
		return bad("ipv4-prefix: host bits set (want %s)", r.IPv4Prefix.Masked())
	case r.EABits < 0 || r.EABits > MaxEABits:
		return bad("ea-len %d: outside 0-%d", r.EABits, MaxEABits)
	case r.IPv6Prefix.Bits()+r.EABits > 128:
		return bad("ea-len %d: rule prefix /%d + EA bits exceed 128", r.EABits, r.IPv6Prefix.Bits())
	case r.PSIDOffset < 0 || r.PSIDOffset > 15:
		return bad("psid-offset %d: outside 0-15", r.PSIDOffset)
	case r.PSIDLen < 0 || r.PSIDLen > 16:
		return bad("psid-len %d: outside 0-16", r.PSIDLen)
	}
	for _, n := range nonUnicast {
		if r.IPv4Prefix.Overlaps(n.p) {
			return bad("ipv4-prefix: overlaps %s (%s), which no CE can be given", n.p, n.what)
		}
	}
	k := r.SharingBits()
	if r.EABits > 0 {
		if r.PSIDLen != 0 && r.PSIDLen != k {
			return bad("psid-len %d: EA bits give %d", r.PSIDLen, k)
		}
		if r.PSID != 0 {
			return bad("psid %d: only rules with EA length 0 carry a PSID", r.PSID)
		}
	}
	if k > 16 {
		return bad("ea-len %d: gives a PSID of %d bits (EA - (32 - r) must be <= 16)", r.EABits, k)
	}
	if k > 0 && r.PSIDOffset+k > 16 {
		return bad("psid-offset %d + psid-len %d > 16", r.PSIDOffset, k)
	}
	if r.EABits == 0 && k < 16 && r.PSID>>k != 0 {
		return bad("psid %d: does not fit in psid-len %d", r.PSID, k)
	}
	return nil
}

// Params returns the port-set parameters the rule gives each of its CEs,
// without the PSID.
func (r Rule) Params() PortParams {
	return PortParams{Offset: uint8(r.PSIDOffset), Len: uint8(r.SharingBits())}
}

// String formats the rule in the syntax ParseRule reads, with every
// port parameter spelled out, e.g. "2001:db8::/40,192.0.2.0/24,16,a=6,k=8".
func (r Rule) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s,%s,%d,a=%d", r.IPv6Prefix, r.IPv4Prefix, r.EABits, r.PSIDOffset)
	if r.EABits == 0 {
		if r.PSIDLen > 0 {
			fmt.Fprintf(&b, ",k=%d,psid=%d", r.PSIDLen, r.PSID)
		}
	} else if k := r.SharingBits(); k > 0 {
		fmt.Fprintf(&b, ",k=%d", k)
	}
	if r.FMR {
		b.WriteString(",fmr")
	}
	return b.String()
}

// MustParseRule is ParseRule for rules known to be good (tests,
// literals): it panics on an error, as netip.MustParsePrefix does.
func MustParseRule(s string) Rule {
	r, err := ParseRule(s)
	if err != nil {
		panic(err)
	}
	return r
}

// ParseRule reads IPV6PREFIX,IPV4PREFIX,EA[,a=N][,k=N][,psid=N][,fmr].
// a defaults to 6; psid is right-aligned, decimal or 0x-hex. The rule is
// validated.
func ParseRule(s string) (Rule, error) {
	fields := strings.Split(strings.TrimSpace(s), ",")
	if len(fields) < 3 {
		return Rule{}, fmt.Errorf("mapt: rule %q: want IPV6PREFIX,IPV4PREFIX,EA[,a=N][,k=N][,psid=N][,fmr]", s)
	}
	r := Rule{PSIDOffset: DefaultPSIDOffset}
	var err error
	if r.IPv6Prefix, err = netip.ParsePrefix(strings.TrimSpace(fields[0])); err != nil || !r.IPv6Prefix.Addr().Is6() {
		return Rule{}, fmt.Errorf("mapt: rule %q: ipv6-prefix %q: not an IPv6 prefix", s, fields[0])
	}
	if r.IPv4Prefix, err = netip.ParsePrefix(strings.TrimSpace(fields[1])); err != nil || !r.IPv4Prefix.Addr().Is4() {
		return Rule{}, fmt.Errorf("mapt: rule %q: ipv4-prefix %q: not an IPv4 prefix", s, fields[1])
	}
	if r.EABits, err = strconv.Atoi(strings.TrimSpace(fields[2])); err != nil {
		return Rule{}, fmt.Errorf("mapt: rule %q: ea-len %q: not a number", s, fields[2])
	}
	seen := map[string]bool{}
	for _, f := range fields[3:] {
		f = strings.TrimSpace(f)
		key, val, hasVal := strings.Cut(f, "=")
		if seen[key] {
			return Rule{}, fmt.Errorf("mapt: rule %q: %s given twice", s, key)
		}
		seen[key] = true
		if key == "fmr" && !hasVal {
			r.FMR = true
			continue
		}
		if !hasVal {
			return Rule{}, fmt.Errorf("mapt: rule %q: unknown field %q", s, f)
		}
		n, perr := strconv.ParseUint(val, 0, 16)
		switch key {
		case "a", "k", "psid":
		default:
			return Rule{}, fmt.Errorf("mapt: rule %q: unknown field %q", s, key)
		}
		if perr != nil {
			return Rule{}, fmt.Errorf("mapt: rule %q: %s=%q: not a number in 0-65535", s, key, val)
		}
		switch key {
		case "a":
			r.PSIDOffset = int(n)
		case "k":
			r.PSIDLen = int(n)
		case "psid":
			r.PSID = uint16(n)
		}
	}
	if seen["psid"] && !seen["k"] {
		return Rule{}, fmt.Errorf("mapt: rule %q: psid given without k", s)
	}
	if err := r.Validate(); err != nil {
		return Rule{}, err
	}
	return r.Canonical(), nil
}

// Canonical returns the rule in the form two equal rules share: a rule
// with EA bits keeps PSIDLen 0, since its PSID length follows from them.
func (r Rule) Canonical() Rule {
	if r.EABits > 0 {
		r.PSIDLen = 0
	}
	r.IPv6Prefix = r.IPv6Prefix.Masked()
	r.IPv4Prefix = r.IPv4Prefix.Masked()
	return r
}
