package s46

import (
	"fmt"
	"net/netip"

	"github.com/insomniacslk/dhcp/dhcpv6"

	"github.com/mapt-go/mapt/mapt"
)

// FlagFMR is the F flag of OPTION_S46_RULE: the low bit of the flags octet
// (RFC 7598 s4.1 Figure 2). Kea's manual says 128; the RFC and Kea's own
// examples use 1.
const FlagFMR = 0x01

// RuleOption is OPTION_S46_RULE (RFC 7598 s4.1), a BMR or FMR.
type RuleOption struct {
	Flags      uint8 // FlagFMR; other bits are reserved
	EALen      uint8
	IPv4Prefix netip.Prefix
	IPv6Prefix netip.Prefix
	// PortParams is the encapsulated OPTION_S46_PORTPARAMS, nil when
	// absent (then a = 6, RFC 7597 s5.1).
	PortParams *PortParamsOption
}

// Code implements dhcpv6.Option.
func (o *RuleOption) Code() dhcpv6.OptionCode { return OptionRule }

// ToBytes implements dhcpv6.Option.
func (o *RuleOption) ToBytes() []byte {
	v4 := o.IPv4Prefix.Masked().Addr()
	if !v4.Is4() {
		v4 = netip.IPv4Unspecified()
	}
	a4 := v4.As4()
	b := []byte{o.Flags, o.EALen, byte(o.IPv4Prefix.Bits())}
	b = append(b, a4[:]...)
	b = appendPrefix6(b, o.IPv6Prefix)
	if o.PortParams != nil {
		b = appendOption(b, o.PortParams)
	}
	return b
}

// FromBytes implements dhcpv6.Option. Unknown encapsulated options are
// skipped; a second PORTPARAMS is an error, since which one wins would be
// a guess.
func (o *RuleOption) FromBytes(b []byte) error { return prefixed(o.decode(b)) }

func (o *RuleOption) decode(b []byte) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%s: %s", optionName(OptionRule), fmt.Sprintf(format, args...))
	}
	if len(b) < 8 {
		return fail("option-length %d, want at least 8", len(b))
	}
	r := RuleOption{Flags: b[0], EALen: b[1]}
	if b[2] > 32 {
		return fail("prefix4-len %d: more than 32", b[2])
	}
	r.IPv4Prefix = netip.PrefixFrom(netip.AddrFrom4([4]byte(b[3:7])), int(b[2])).Masked()
	p6, rest, err := readPrefix6("prefix6", b[7:])
	if err != nil {
		return fail("%v", err)
	}
	r.IPv6Prefix = p6
	subs, err := SplitOptions(optionName(OptionRule), rest)
	if err != nil {
		return err
	}
	for _, s := range subs {
		if s.Code != OptionPortParams {
			continue
		}
		if r.PortParams != nil {
			return fail("more than one %s", optionName(OptionPortParams))
		}
		r.PortParams = &PortParamsOption{}
		if err := r.PortParams.decode(s.Data); err != nil {
			return fail("%v", err)
		}
	}
	*o = r
	return nil
}

// String implements dhcpv6.Option.
func (o *RuleOption) String() string {
	s := fmt.Sprintf("%s: {flags=%#02x ea-len=%d ipv4=%s ipv6=%s", optionName(o.Code()), o.Flags, o.EALen, o.IPv4Prefix, o.IPv6Prefix)
	if o.PortParams != nil {
		s += fmt.Sprintf(" offset=%d psid-len=%d psid=%d", o.PortParams.Offset, o.PortParams.PSIDLen, o.PortParams.PSID)
	}
	return s + "}"
}

// Rule converts the option into a validated, canonical mapt.Rule. The PSID
// offset is 6 when PORTPARAMS is absent and its value, 0 included, when
// present. For a rule with EA bits, psid-len 0 means "derive k from the EA
// bits" (RFC 7598 s4.5); an explicit PSID is only valid with EA length 0.
func (o *RuleOption) Rule() (mapt.Rule, error) {
	r, err := o.rule()
	if err != nil {
		return mapt.Rule{}, fmt.Errorf("s46: %s: %w", optionName(OptionRule), err)
	}
	return r, nil
}

func (o *RuleOption) rule() (mapt.Rule, error) {
	r := mapt.Rule{
		IPv6Prefix: o.IPv6Prefix,
		IPv4Prefix: o.IPv4Prefix,
		EABits:     int(o.EALen),
		PSIDOffset: mapt.DefaultPSIDOffset,
		FMR:        o.Flags&FlagFMR != 0,
	}
	if pp := o.PortParams; pp != nil {
		r.PSIDOffset = int(pp.Offset)
		r.PSIDLen = int(pp.PSIDLen)
		r.PSID = pp.PSID
	}
	if err := r.Validate(); err != nil {
		return mapt.Rule{}, err
	}
	return r.Canonical(), nil
}

// NewRuleOption encodes a rule. PORTPARAMS is always sent, so the offset
// (0 included) is explicit; for rules with EA bits it carries psid-len 0,
// leaving k to the EA bits, as Kea does.
func NewRuleOption(r mapt.Rule) *RuleOption {
	o := &RuleOption{
		EALen:      uint8(r.EABits),
		IPv4Prefix: r.IPv4Prefix,
		IPv6Prefix: r.IPv6Prefix,
		PortParams: &PortParamsOption{Offset: uint8(r.PSIDOffset)},
	}
	if r.FMR {
		o.Flags = FlagFMR
	}
	if r.EABits == 0 {
		o.PortParams.PSIDLen = uint8(r.PSIDLen)
		o.PortParams.PSID = r.PSID
	}
	return o
}
