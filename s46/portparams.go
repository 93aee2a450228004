package s46

import (
	"encoding/binary"
	"fmt"

	"github.com/insomniacslk/dhcp/dhcpv6"
)

// PortParamsOption is OPTION_S46_PORTPARAMS (RFC 7598 s4.5). The PSID is
// left-aligned on the wire; here it is right-aligned like everywhere in
// mapt: the PSIDLen low bits are the value.
type PortParamsOption struct {
	Offset  uint8  // a, 0-15
	PSIDLen uint8  // k, 0-16; 0 means the PSID field is ignored
	PSID    uint16 // right-aligned
}

// Code implements dhcpv6.Option.
func (o *PortParamsOption) Code() dhcpv6.OptionCode { return OptionPortParams }

// ToBytes implements dhcpv6.Option.
func (o *PortParamsOption) ToBytes() []byte {
	var psid uint16
	if o.PSIDLen > 0 && o.PSIDLen <= 16 {
		psid = o.PSID << (16 - o.PSIDLen)
	}
	return binary.BigEndian.AppendUint16([]byte{o.Offset, o.PSIDLen}, psid)
}

// FromBytes implements dhcpv6.Option.
func (o *PortParamsOption) FromBytes(b []byte) error { return prefixed(o.decode(b)) }

func (o *PortParamsOption) decode(b []byte) error {
	if len(b) != 4 {
		return fmt.Errorf("%s: option-length %d, want 4", optionName(OptionPortParams), len(b))
	}
	off, k, w := b[0], b[1], binary.BigEndian.Uint16(b[2:])
	switch {
	case off > 15:
		return fmt.Errorf("%s: offset %d: outside 0-15", optionName(OptionPortParams), off)
	case k > 16:
		return fmt.Errorf("%s: psid-len %d: more than 16", optionName(OptionPortParams), k)
	}
	var psid uint16
	if k > 0 {
		// Bits past k must be zero; a server that sends the PSID
		// right-aligned (odhcp6c PR 176, openwrt#25190) trips this
		// instead of silently yielding the wrong port set.
		if pad := w & (1<<(16-k) - 1); pad != 0 {
			return fmt.Errorf("%s: psid 0x%04x: bits set past psid-len %d (the PSID must be left-aligned)", optionName(OptionPortParams), w, k)
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
