package s46

import (
	"fmt"
	"net/netip"

	"github.com/insomniacslk/dhcp/dhcpv6"
)

// DMROption is OPTION_S46_DMR (RFC 7598 s4.3): the BR's RFC 6052 prefix.
type DMROption struct {
	Prefix netip.Prefix
}

// Code implements dhcpv6.Option.
func (o *DMROption) Code() dhcpv6.OptionCode { return OptionDMR }

// ToBytes implements dhcpv6.Option.
func (o *DMROption) ToBytes() []byte { return appendPrefix6(nil, o.Prefix) }

// FromBytes implements dhcpv6.Option.
func (o *DMROption) FromBytes(b []byte) error { return prefixed(o.decode(b)) }

func (o *DMROption) decode(b []byte) error {
	p, rest, err := readPrefix6("dmr-prefix6", b)
	if err != nil {
		return fmt.Errorf("%s: %w", optionName(OptionDMR), err)
	}
	if len(rest) != 0 {
		return fmt.Errorf("%s: %d bytes after the /%d prefix (option-length must be 1 + prefix octets)", optionName(OptionDMR), len(rest), p.Bits())
	}
	o.Prefix = p
	return nil
}

// String implements dhcpv6.Option.
func (o *DMROption) String() string { return fmt.Sprintf("%s: %s", optionName(o.Code()), o.Prefix) }

// BROption is OPTION_S46_BR (RFC 7598 s4.2), the BR address of MAP-E and
// Lightweight 4over6. A MAP-T container must not carry it (s6).
type BROption struct {
	Addr netip.Addr
}

// Code implements dhcpv6.Option.
func (o *BROption) Code() dhcpv6.OptionCode { return OptionBR }

// ToBytes implements dhcpv6.Option.
func (o *BROption) ToBytes() []byte {
	a := o.Addr.As16()
	return a[:]
}

// FromBytes implements dhcpv6.Option.
func (o *BROption) FromBytes(b []byte) error { return prefixed(o.decode(b)) }

func (o *BROption) decode(b []byte) error {
	if len(b) != 16 {
		return fmt.Errorf("%s: option-length %d, want 16", optionName(OptionBR), len(b))
	}
	o.Addr = netip.AddrFrom16([16]byte(b))
	return nil
}

// String implements dhcpv6.Option.
func (o *BROption) String() string { return fmt.Sprintf("%s: %s", optionName(o.Code()), o.Addr) }
