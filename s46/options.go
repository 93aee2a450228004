package s46

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/insomniacslk/dhcp/dhcpv6"
)

// DHCPv6 option codes of RFC 7598 s4 and s5, as IANA assigned them.
const (
	OptionRule       = dhcpv6.OptionS46Rule       // 89, s4.1
	OptionBR         = dhcpv6.OptionS46BR         // 90, s4.2
	OptionDMR        = dhcpv6.OptionS46DMR        // 91, s4.3
	OptionV4V6Bind   = dhcpv6.OptionS46V4V6Bind   // 92, s4.4
	OptionPortParams = dhcpv6.OptionS46PortParams // 93, s4.5
	OptionContMAPE   = dhcpv6.OptionS46ContMapE   // 94, s5.1
	OptionContMAPT   = dhcpv6.OptionS46ContMapT   // 95, s5.2
	OptionContLW     = dhcpv6.OptionS46ContLW     // 96, s5.3
)

// optionName names an S46 option code for error messages.
func optionName(c dhcpv6.OptionCode) string {
	switch c {
	case OptionRule:
		return "S46_RULE (89)"
	case OptionBR:
		return "S46_BR (90)"
	case OptionDMR:
		return "S46_DMR (91)"
	case OptionV4V6Bind:
		return "S46_V4V6BIND (92)"
	case OptionPortParams:
		return "S46_PORTPARAMS (93)"
	case OptionContMAPE:
		return "S46_CONT_MAPE (94)"
	case OptionContMAPT:
		return "S46_CONT_MAPT (95)"
	case OptionContLW:
		return "S46_CONT_LW (96)"
	}
	return fmt.Sprintf("option %d", uint16(c))
}

// prefixed gives err the package prefix; nil stays nil.
func prefixed(err error) error {
	if err != nil {
		return fmt.Errorf("s46: %w", err)
	}
	return nil
}

// TLV is one DHCPv6 option as framed on the wire, not yet decoded. Data
// aliases the bytes it was split from.
type TLV struct {
	Code dhcpv6.OptionCode
	Data []byte
}

// SplitOptions cuts a run of DHCPv6 options (RFC 8415 s21.1: code, length,
// value) into TLVs: the payload of a container or the rest of a rule here,
// a whole message's options or a suboption list in provision. where names
// the run for the error, which starts with it: "S46_RULE (89): 3 trailing
// bytes ...". An option that claims more bytes than are left, or fewer
// than 4 trailing bytes, is an error.
func SplitOptions(where string, data []byte) ([]TLV, error) {
	var out []TLV
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
		out = append(out, TLV{Code: code, Data: data[off : off+n]})
		off += n
	}
	return out, nil
}

// appendOption appends o as code, length and value (RFC 8415 s21.1).
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

// appendPrefix6 is readPrefix6's inverse; an invalid or IPv4 prefix goes
// out as length 0.
func appendPrefix6(b []byte, p netip.Prefix) []byte {
	if !p.IsValid() || !p.Addr().Is6() {
		return append(b, 0)
	}
	a := p.Masked().Addr().As16()
	return append(append(b, byte(p.Bits())), a[:(p.Bits()+7)/8]...)
}
