package s46

import (
	"errors"
	"fmt"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv6"

	"github.com/mapt-go/mapt/mapt"
)

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
	case OptionContMAPE, OptionContMAPT, OptionContLW:
	default:
		return nil, fmt.Errorf("s46: %s: not an S46 container", optionName(kind))
	}
	subs, err := SplitOptions(optionName(kind), b)
	if err != nil {
		return nil, fmt.Errorf("s46: %w", err)
	}
	c := &Container{Kind: kind, Options: make(dhcpv6.Options, 0, len(subs))}
	for _, s := range subs {
		o, err := decodeSub(s)
		if err != nil {
			return nil, fmt.Errorf("s46: %s: %w", optionName(kind), err)
		}
		c.Options = append(c.Options, o)
	}
	return c, nil
}

// decodeSub decodes one encapsulated option of a container.
func decodeSub(s TLV) (dhcpv6.Option, error) {
	var err error
	switch s.Code {
	case OptionRule:
		o := &RuleOption{}
		err = o.decode(s.Data)
		return o, err
	case OptionDMR:
		o := &DMROption{}
		err = o.decode(s.Data)
		return o, err
	case OptionBR:
		o := &BROption{}
		err = o.decode(s.Data)
		return o, err
	}
	return &dhcpv6.OptionGeneric{OptionCode: s.Code, OptionData: append([]byte(nil), s.Data...)}, nil
}

// decoded returns o as this package's type for its code: as it is when
// ParseContainer made it, decoded from its bytes when it came another way
// (an OptionGeneric from insomniacslk, say).
func decoded[T any, P interface {
	*T
	decode([]byte) error
}](o dhcpv6.Option) (P, error) {
	if p, ok := o.(P); ok {
		return p, nil
	}
	p := P(new(T))
	return p, p.decode(o.ToBytes())
}

// errNotMAPT reports a container that is not OPTION_S46_CONT_MAPT.
var errNotMAPT = errors.New("not a MAP-T container")

// Domain checks the container against RFC 7598 s5.2 and s6 (>= 1 rule,
// exactly one DMR, no BR, no V4V6BIND) and returns its MAP-T domain. Every
// rule must be valid and the domain consistent (mapt.Domain.Validate).
func (c *Container) Domain() (mapt.Domain, error) {
	where := optionName(c.Kind)
	if c.Kind != OptionContMAPT {
		return mapt.Domain{}, fmt.Errorf("s46: %s: %w", where, errNotMAPT)
	}
	var d mapt.Domain
	dmrs := 0
	for _, o := range c.Options {
		switch o.Code() {
		case OptionBR, OptionV4V6Bind:
			return mapt.Domain{}, fmt.Errorf("s46: %s: %s is not permitted in a MAP-T container (RFC 7598 s6)", where, optionName(o.Code()))
		case OptionRule:
			ro, err := decoded[RuleOption](o)
			if err != nil {
				return mapt.Domain{}, fmt.Errorf("s46: %s: %w", where, err)
			}
			r, err := ro.rule()
			if err != nil {
				return mapt.Domain{}, fmt.Errorf("s46: %s: rule %d: %w", where, len(d.Rules)+1, err)
			}
			d.Rules = append(d.Rules, r)
		case OptionDMR:
			do, err := decoded[DMROption](o)
			if err != nil {
				return mapt.Domain{}, fmt.Errorf("s46: %s: %w", where, err)
			}
			d.DMR = do.Prefix
			dmrs++
		}
	}
	switch {
	case len(d.Rules) == 0:
		return mapt.Domain{}, fmt.Errorf("s46: %s: no %s (RFC 7598 s5.2 needs at least one)", where, optionName(OptionRule))
	case dmrs != 1:
		return mapt.Domain{}, fmt.Errorf("s46: %s: %d %s options (RFC 7598 s5.2 needs exactly one)", where, dmrs, optionName(OptionDMR))
	}
	if err := d.Validate(); err != nil {
		return mapt.Domain{}, fmt.Errorf("s46: %s: %w", where, err)
	}
	return d, nil
}

// ParseMAPT decodes the payload of an OPTION_S46_CONT_MAPT into a
// validated domain. Any error means RFC 7598 s6 wants the container
// ignored; the error says why.
func ParseMAPT(b []byte) (mapt.Domain, error) {
	c, err := ParseContainer(OptionContMAPT, b)
	if err != nil {
		return mapt.Domain{}, err
	}
	return c.Domain()
}

// NewMAPTContainer encodes a domain as OPTION_S46_CONT_MAPT: its rules,
// then the DMR.
func NewMAPTContainer(d mapt.Domain) *Container {
	c := &Container{Kind: OptionContMAPT}
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
		if o.Code() != OptionContMAPT {
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
