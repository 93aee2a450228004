package provision

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv6"

	"github.com/mapt-go/mapt/mapt"
)

// DHCPv6 option codes of RFC 7598 s4 and s5, as IANA assigned them.
const (
	OptionS46Rule       = dhcpv6.OptionS46Rule       // 89
	OptionS46BR         = dhcpv6.OptionS46BR         // 90
	OptionS46DMR        = dhcpv6.OptionS46DMR        // 91
	OptionS46V4V6Bind   = dhcpv6.OptionS46V4V6Bind   // 92
	OptionS46PortParams = dhcpv6.OptionS46PortParams // 93
	OptionS46ContMAPE   = dhcpv6.OptionS46ContMapE   // 94
	OptionS46ContMAPT   = dhcpv6.OptionS46ContMapT   // 95
	OptionS46ContLW     = dhcpv6.OptionS46ContLW     // 96
)

// FlagFMR is the F flag of OPTION_S46_RULE: the low bit of the flags octet
// (RFC 7598 s4.1 Figure 2). Kea's manual says 128; the RFC and Kea's own
// examples use 1.
const FlagFMR = 0x01

// optionName names an S46 option code for error messages.
func optionName(c dhcpv6.OptionCode) string {
	switch c {
	case OptionS46Rule:
		return "S46_RULE (89)"
	case OptionS46BR:
		return "S46_BR (90)"
	case OptionS46DMR:
		return "S46_DMR (91)"
	case OptionS46V4V6Bind:
		return "S46_V4V6BIND (92)"
	case OptionS46PortParams:
		return "S46_PORTPARAMS (93)"
	case OptionS46ContMAPE:
		return "S46_CONT_MAPE (94)"
	case OptionS46ContMAPT:
		return "S46_CONT_MAPT (95)"
	case OptionS46ContLW:
		return "S46_CONT_LW (96)"
	}
	return fmt.Sprintf("option %d", uint16(c))
}

// tlv is one encapsulated option, not yet decoded.
type tlv struct {
	code dhcpv6.OptionCode
	data []byte
}

// splitOptions cuts a run of DHCPv6 options (RFC 8415 s21.1) into TLVs.
// where names the enclosing option for the error message.
func splitOptions(where string, data []byte) ([]tlv, error) {
	var out []tlv
	for off := 0; off < len(data); {
		if len(data)-off < 4 {
			return nil, fmt.Errorf("%s: %d trailing bytes at offset %d, too short for an option header", where, len(data)-off, off)
		}
		code := dhcpv6.OptionCode(binary.BigEndian.Uint16(data[off:]))
		n := int(binary.BigEndian.Uint16(data[off+2:]))
		off += 4
		if n > len(data)-off {
			return nil, fmt.Errorf("%s: %s: option-length %d exceeds the %d bytes left", where, optionName(code), n, len(data)-off)
		}
		out = append(out, tlv{code: code, data: data[off : off+n]})
		off += n
	}
	return out, nil
}

// appendOption appends code, length and value (RFC 8415 s21.1).
func appendOption(b []byte, o dhcpv6.Option) []byte {
	v := o.ToBytes()
	b = binary.BigEndian.AppendUint16(b, uint16(o.Code()))
	b = binary.BigEndian.AppendUint16(b, uint16(len(v)))
	return append(b, v...)
}

// readPrefix6 reads a length octet and the prefix padded to whole octets
// (RFC 7598 s4.1, s4.3): Kea sends a /51 as 7 octets. It returns the
// prefix, masked, and the rest of b.
func readPrefix6(field string, b []byte) (netip.Prefix, []byte, error) {
	if len(b) < 1 {
		return netip.Prefix{}, nil, fmt.Errorf("%s: missing prefix length", field)
	}
	bits := int(b[0])
	if bits > 128 {
		return netip.Prefix{}, nil, fmt.Errorf("%s: prefix length %d: more than 128", field, bits)
	}
	n := (bits + 7) / 8
	if len(b)-1 < n {
		return netip.Prefix{}, nil, fmt.Errorf("%s: /%d needs %d octets, only %d present", field, bits, n, len(b)-1)
	}
	var a [16]byte
	copy(a[:], b[1:1+n])
	// Padding bits are zero on the wire; mask rather than reject, as
	// RFC 7598 s4.1 does for the IPv4 prefix's reserved bits.
	return netip.PrefixFrom(netip.AddrFrom16(a), bits).Masked(), b[1+n:], nil
}

func appendPrefix6(b []byte, p netip.Prefix) []byte {
	if !p.IsValid() || !p.Addr().Is6() {
		return append(b, 0)
	}
	a := p.Masked().Addr().As16()
	return append(append(b, byte(p.Bits())), a[:(p.Bits()+7)/8]...)
}

// PortParamsOption is OPTION_S46_PORTPARAMS (RFC 7598 s4.5). The PSID is
// left-aligned on the wire; here it is right-aligned like everywhere in
// mapt: the PSIDLen low bits are the value.
type PortParamsOption struct {
	Offset  uint8  // a, 0-15
	PSIDLen uint8  // k, 0-16; 0 means the PSID field is ignored
	PSID    uint16 // right-aligned
}

// Code implements dhcpv6.Option.
func (o *PortParamsOption) Code() dhcpv6.OptionCode { return OptionS46PortParams }

// ToBytes implements dhcpv6.Option.
func (o *PortParamsOption) ToBytes() []byte {
	var psid uint16
	if o.PSIDLen > 0 && o.PSIDLen <= 16 {
		psid = o.PSID << (16 - o.PSIDLen)
	}
	return binary.BigEndian.AppendUint16([]byte{o.Offset, o.PSIDLen}, psid)
}

// FromBytes implements dhcpv6.Option.
func (o *PortParamsOption) FromBytes(b []byte) error {
	if err := o.decode(b); err != nil {
		return fmt.Errorf("provision: %w", err)
	}
	return nil
}

func (o *PortParamsOption) decode(b []byte) error {
	if len(b) != 4 {
		return fmt.Errorf("%s: option-length %d, want 4", optionName(OptionS46PortParams), len(b))
	}
	off, k, w := b[0], b[1], binary.BigEndian.Uint16(b[2:])
	switch {
	case off > 15:
		return fmt.Errorf("%s: offset %d: outside 0-15", optionName(OptionS46PortParams), off)
	case k > 16:
		return fmt.Errorf("%s: psid-len %d: more than 16", optionName(OptionS46PortParams), k)
	}
	var psid uint16
	if k > 0 {
		// Bits past k must be zero; a server that sends the PSID
		// right-aligned (odhcp6c PR 176, openwrt#25190) trips this
		// instead of silently yielding the wrong port set.
		if pad := w & (1<<(16-k) - 1); pad != 0 {
			return fmt.Errorf("%s: psid 0x%04x: bits set past psid-len %d (the PSID must be left-aligned)", optionName(OptionS46PortParams), w, k)
		}
		psid = w >> (16 - k)
	}
	*o = PortParamsOption{Offset: off, PSIDLen: k, PSID: psid}
	return nil
}

// String implements dhcpv6.Option.
func (o *PortParamsOption) String() string {
	return fmt.Sprintf("%s: {offset=%d psid-len=%d psid=%d}", optionName(o.Code()), o.Offset, o.PSIDLen, o.PSID)
}

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
func (o *RuleOption) Code() dhcpv6.OptionCode { return OptionS46Rule }

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
func (o *RuleOption) FromBytes(b []byte) error {
	if err := o.decode(b); err != nil {
		return fmt.Errorf("provision: %w", err)
	}
	return nil
}

func (o *RuleOption) decode(b []byte) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%s: %s", optionName(OptionS46Rule), fmt.Sprintf(format, args...))
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
	subs, err := splitOptions(optionName(OptionS46Rule), rest)
	if err != nil {
		return err
	}
	for _, s := range subs {
		if s.code != OptionS46PortParams {
			continue
		}
		if r.PortParams != nil {
			return fail("more than one %s", optionName(OptionS46PortParams))
		}
		r.PortParams = &PortParamsOption{}
		if err := r.PortParams.decode(s.data); err != nil {
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
		return mapt.Rule{}, fmt.Errorf("provision: %s: %w", optionName(OptionS46Rule), err)
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

// DMROption is OPTION_S46_DMR (RFC 7598 s4.3): the BR's RFC 6052 prefix.
type DMROption struct {
	Prefix netip.Prefix
}

// Code implements dhcpv6.Option.
func (o *DMROption) Code() dhcpv6.OptionCode { return OptionS46DMR }

// ToBytes implements dhcpv6.Option.
func (o *DMROption) ToBytes() []byte { return appendPrefix6(nil, o.Prefix) }

// FromBytes implements dhcpv6.Option.
func (o *DMROption) FromBytes(b []byte) error {
	if err := o.decode(b); err != nil {
		return fmt.Errorf("provision: %w", err)
	}
	return nil
}

func (o *DMROption) decode(b []byte) error {
	p, rest, err := readPrefix6("dmr-prefix6", b)
	if err != nil {
		return fmt.Errorf("%s: %w", optionName(OptionS46DMR), err)
	}
	if len(rest) != 0 {
		return fmt.Errorf("%s: %d bytes after the /%d prefix (option-length must be 1 + prefix octets)", optionName(OptionS46DMR), len(rest), p.Bits())
	}
	o.Prefix = p
	return nil
}

// String implements dhcpv6.Option.
func (o *DMROption) String() string { return fmt.Sprintf("%s: %s", optionName(o.Code()), o.Prefix) }

// BROption is OPTION_S46_BR (RFC 7598 s4.2), the BR address of MAP-E and
// Lightweight 4over6.
type BROption struct {
	Addr netip.Addr
}

// Code implements dhcpv6.Option.
func (o *BROption) Code() dhcpv6.OptionCode { return OptionS46BR }

// ToBytes implements dhcpv6.Option.
func (o *BROption) ToBytes() []byte {
	a := o.Addr.As16()
	return a[:]
}

// FromBytes implements dhcpv6.Option.
func (o *BROption) FromBytes(b []byte) error {
	if err := o.decode(b); err != nil {
		return fmt.Errorf("provision: %w", err)
	}
	return nil
}

func (o *BROption) decode(b []byte) error {
	if len(b) != 16 {
		return fmt.Errorf("%s: option-length %d, want 16", optionName(OptionS46BR), len(b))
	}
	o.Addr = netip.AddrFrom16([16]byte(b))
	return nil
}

// String implements dhcpv6.Option.
func (o *BROption) String() string { return fmt.Sprintf("%s: %s", optionName(o.Code()), o.Addr) }

// Container is one of the S46 container options (RFC 7598 s5): MAP-E
// (94), MAP-T (95) or Lightweight 4over6 (96). It implements dhcpv6.Option,
// so it can be added to a message, e.g. by a test server.
type Container struct {
	Kind dhcpv6.OptionCode
	// Options are the encapsulated options: *RuleOption, *DMROption,
	// *BROption, and dhcpv6.OptionGeneric for the rest.
	Options dhcpv6.Options
}

// Code implements dhcpv6.Option.
func (c *Container) Code() dhcpv6.OptionCode { return c.Kind }

// ToBytes implements dhcpv6.Option.
func (c *Container) ToBytes() []byte {
	var b []byte
	for _, o := range c.Options {
		b = appendOption(b, o)
	}
	return b
}

// FromBytes implements dhcpv6.Option. Kind must be set.
func (c *Container) FromBytes(b []byte) error {
	p, err := ParseContainer(c.Kind, b)
	if err != nil {
		return err
	}
	*c = *p
	return nil
}

// String implements dhcpv6.Option.
func (c *Container) String() string {
	parts := make([]string, len(c.Options))
	for i, o := range c.Options {
		parts[i] = o.String()
	}
	return fmt.Sprintf("%s: [%s]", optionName(c.Kind), strings.Join(parts, ", "))
}

// ParseContainer decodes the payload of an S46 container option (the bytes
// after code and length). Length errors anywhere inside are errors; unknown
// encapsulated options are kept as dhcpv6.OptionGeneric.
func ParseContainer(kind dhcpv6.OptionCode, b []byte) (*Container, error) {
	switch kind {
	case OptionS46ContMAPE, OptionS46ContMAPT, OptionS46ContLW:
	default:
		return nil, fmt.Errorf("provision: %s: not an S46 container", optionName(kind))
	}
	subs, err := splitOptions(optionName(kind), b)
	if err != nil {
		return nil, fmt.Errorf("provision: %w", err)
	}
	c := &Container{Kind: kind, Options: make(dhcpv6.Options, 0, len(subs))}
	for _, s := range subs {
		o, err := decodeSub(s)
		if err != nil {
			return nil, fmt.Errorf("provision: %s: %w", optionName(kind), err)
		}
		c.Options = append(c.Options, o)
	}
	return c, nil
}

// decodeSub decodes one encapsulated option of a container.
func decodeSub(s tlv) (dhcpv6.Option, error) {
	var err error
	switch s.code {
	case OptionS46Rule:
		o := &RuleOption{}
		err = o.decode(s.data)
		return o, err
	case OptionS46DMR:
		o := &DMROption{}
		err = o.decode(s.data)
		return o, err
	case OptionS46BR:
		o := &BROption{}
		err = o.decode(s.data)
		return o, err
	}
	return &dhcpv6.OptionGeneric{OptionCode: s.code, OptionData: append([]byte(nil), s.data...)}, nil
}

// errNotMAPT reports a container that is not OPTION_S46_CONT_MAPT.
var errNotMAPT = errors.New("not a MAP-T container")

// Domain checks the container against RFC 7598 s5.2 and s6 (>= 1 rule,
// exactly one DMR, no BR, no V4V6BIND) and returns its MAP-T domain. Every
// rule must be valid and the domain consistent (mapt.Domain.Validate).
func (c *Container) Domain() (mapt.Domain, error) {
	where := optionName(c.Kind)
	if c.Kind != OptionS46ContMAPT {
		return mapt.Domain{}, fmt.Errorf("provision: %s: %w", where, errNotMAPT)
	}
	var d mapt.Domain
	dmrs := 0
	for _, o := range c.Options {
		switch o.Code() {
		case OptionS46BR, OptionS46V4V6Bind:
			return mapt.Domain{}, fmt.Errorf("provision: %s: %s is not permitted in a MAP-T container (RFC 7598 s6)", where, optionName(o.Code()))
		case OptionS46Rule:
			ro, ok := o.(*RuleOption)
			if !ok {
				ro = &RuleOption{}
				if err := ro.decode(o.ToBytes()); err != nil {
					return mapt.Domain{}, fmt.Errorf("provision: %s: %w", where, err)
				}
			}
			r, err := ro.rule()
			if err != nil {
				return mapt.Domain{}, fmt.Errorf("provision: %s: rule %d: %w", where, len(d.Rules)+1, err)
			}
			d.Rules = append(d.Rules, r)
		case OptionS46DMR:
			do, ok := o.(*DMROption)
			if !ok {
				do = &DMROption{}
				if err := do.decode(o.ToBytes()); err != nil {
					return mapt.Domain{}, fmt.Errorf("provision: %s: %w", where, err)
				}
			}
			d.DMR = do.Prefix
			dmrs++
		}
	}
	switch {
	case len(d.Rules) == 0:
		return mapt.Domain{}, fmt.Errorf("provision: %s: no %s (RFC 7598 s5.2 needs at least one)", where, optionName(OptionS46Rule))
	case dmrs != 1:
		return mapt.Domain{}, fmt.Errorf("provision: %s: %d %s options (RFC 7598 s5.2 needs exactly one)", where, dmrs, optionName(OptionS46DMR))
	}
	if err := d.Validate(); err != nil {
		return mapt.Domain{}, fmt.Errorf("provision: %s: %w", where, err)
	}
	return d, nil
}

// ParseMAPT decodes the payload of an OPTION_S46_CONT_MAPT into a
// validated domain. Any error means RFC 7598 s6 wants the container
// ignored; the error says why.
func ParseMAPT(b []byte) (mapt.Domain, error) {
	c, err := ParseContainer(OptionS46ContMAPT, b)
	if err != nil {
		return mapt.Domain{}, err
	}
	return c.Domain()
}

// NewMAPTContainer encodes a domain as OPTION_S46_CONT_MAPT: its rules,
// then the DMR.
func NewMAPTContainer(d mapt.Domain) *Container {
	c := &Container{Kind: OptionS46ContMAPT}
	for _, r := range d.Rules {
		c.Options = append(c.Options, NewRuleOption(r))
	}
	c.Options = append(c.Options, &DMROption{Prefix: d.DMR})
	return c
}

// Domains decodes every MAP-T container among a message's top-level
// options (RFC 7598 s5.2: one per domain). S46 options outside a container
// are not looked at. A container that breaks RFC 7598 is left out and
// ignored gets one line saying why, for the caller to log.
func Domains(opts dhcpv6.Options) (domains []mapt.Domain, ignored []string) {
	n := 0
	for _, o := range opts {
		if o.Code() != OptionS46ContMAPT {
			continue
		}
		n++
		d, err := ParseMAPT(o.ToBytes())
		if err != nil {
			ignored = append(ignored, fmt.Sprintf("MAP-T container %d ignored: %v", n, err))
			continue
		}
		domains = append(domains, d)
	}
	return domains, ignored
}

// MessageDomains is Domains over a DHCPv6 message's options.
func MessageDomains(m *dhcpv6.Message) (domains []mapt.Domain, ignored []string) {
	return Domains(m.Options.Options)
}
