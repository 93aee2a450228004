// Package s46test holds the RFC 7598 test vectors that the tests of s46,
// provision and kea share: the container Kea sends for the seed's domain,
// the pieces of it as hex, and helpers to build options from hex. It is
// for tests only.
package s46test

import (
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"

	"github.com/mapt-go/mapt/mapt"
)

// KeaSeedOption95 is OPTION_S46_CONT_MAPT exactly as kea-dhcp6 2.2.0 sent
// it for the seed's domain (rule 2001:db8:ce::/51 -> 192.0.2.0/24, EA 13,
// offset 0; DMR 64:ff9b::/96), code and length included, as hex with
// spaces between the fields.
const KeaSeedOption95 = "005f002c 0059 0017 00 0d 18 c0000200 33 20010db800ce00 005d 0004 00 00 0000 005b 000d 60 0064ff9b0000000000000000"

// Pieces of S46 options as hex: payloads (Rule payloads, for RuleTLV) and
// whole options.
const (
	// SeedRule is the payload of the seed's OPTION_S46_RULE without its
	// PORTPARAMS: 2001:db8:ce::/51 -> 192.0.2.0/24, EA 13.
	SeedRule = "00 0d 18 c0000200 33 20010db800ce00"
	// SeedPP is the seed's OPTION_S46_PORTPARAMS: offset 0, psid-len 0.
	SeedPP = "005d 0004 00 00 0000"
	// SeedDMR is the seed's OPTION_S46_DMR: 64:ff9b::/96.
	SeedDMR = "005b 000d 60 0064ff9b0000000000000000"
	// OtherRule is a rule payload: 2001:db8::/40 -> 198.51.100.0/24, EA 16.
	OtherRule = "00 10 18 c6336400 28 20010db800"
	// UnknownOpt is an option no S46 decoder knows (code 0x1234).
	UnknownOpt = "1234 0002 abcd"
)

// Hex decodes hex with optional spaces, failing tb on a bad digit.
func Hex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// TLV builds an option (hex) from its code and payload (hex).
func TLV(code uint16, payload string) string {
	p := strings.ReplaceAll(payload, " ", "")
	return hex.EncodeToString([]byte{byte(code >> 8), byte(code), byte(len(p) / 2 >> 8), byte(len(p) / 2)}) + p
}

// RuleTLV builds an OPTION_S46_RULE (hex) from its payload (hex).
func RuleTLV(payload string) string { return TLV(89, payload) }

// SeedDomain is the domain KeaSeedOption95 carries.
func SeedDomain(tb testing.TB) mapt.Domain {
	return mapt.Domain{
		Rules: []mapt.Rule{mapt.MustParseRule("2001:db8:ce::/51,192.0.2.0/24,13,a=0")},
		DMR:   netip.MustParsePrefix("64:ff9b::/96"),
	}
}
