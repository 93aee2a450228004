package mapt

import (
	"fmt"
	"strconv"
)

// DSField says what translation writes into the new header's DS field,
// the octet of DSCP and ECN (RFC 2474, RFC 3168): the IPv4 TOS octet or
// the IPv6 Traffic Class.
//
// The zero value copies the old header's octet, all 8 bits, as RFC 7915
// s4.1 and s5.1 do by default: the semantics are the same in both
// families. Set writes Value instead, the option both sections say a
// translator SHOULD have for IPv4 networks that still give the octet its
// old meaning (Type of Service and Precedence, RFC 791) and for operators
// that rewrite DSCP at their boundary (RFC 2475). The whole octet is set,
// ECN bits included, as the RFC words it; a value with ECN 00 (Not-ECT)
// leaves congestion to packet loss.
type DSField struct {
	Set   bool
	Value uint8
}

// ParseDSField reads "copy" (the default) or an octet: 0-255, decimal or
// 0x hexadecimal (DSCP 46, Expedited Forwarding, is 184 or 0xb8).
func ParseDSField(s string) (DSField, error) {
	if s == "copy" {
		return DSField{}, nil
	}
	v, err := strconv.ParseUint(s, 0, 8)
	if err != nil {
		return DSField{}, fmt.Errorf("mapt: DS field %q: want copy or an octet 0-255", s)
	}
	return DSField{Set: true, Value: uint8(v)}, nil
}

// String is the form ParseDSField reads: "copy", or the octet in
// hexadecimal.
func (f DSField) String() string {
	if !f.Set {
		return "copy"
	}
	return fmt.Sprintf("0x%02x", f.Value)
}
