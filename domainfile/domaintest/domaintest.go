package domaintest

import (
	"fmt"
	"strings"
)

// DMR is the seed's Default Mapping Rule prefix (RFC 6052's well-known
// prefix).
const DMR = "64:ff9b::/96"

// SeedRule is the seed's rule as an item of Domain's rule list, with
// psid-offset (a) psidOffset and no fmr key: 2001:db8:ce::/51 ->
// 192.0.2.0/24, EA length 13. Four lines, in this order, so that tests of
// line numbers can count on them.
func SeedRule(psidOffset int) string {
	return fmt.Sprintf(`      - ipv6-prefix: 2001:db8:ce::/51
        ipv4-prefix: 192.0.2.0/24
        ea-len: 13
        psid-offset: %d
`, psidOffset)
}

// SeedRuleFMR is SeedRule with an fmr key: fmr sets the F flag (a
// forwarding mapping rule, CEs reach each other directly). It is a
// function of its own because a file without the key is not the same
// input as one with "fmr: false".
func SeedRuleFMR(psidOffset int, fmr bool) string {
	return SeedRule(psidOffset) + fmt.Sprintf("        fmr: %v\n", fmr)
}

// OneToOneRules are the two 1:1 rules (EA length 0, psid-len 8) of one
// shared address, 198.51.100.18: PSID 0x34 at 2001:db8:12:3400::/56 and
// PSID 0x35 at 2001:db8:12:3500::/56, as items of Domain's rule list.
const OneToOneRules = `      - ipv6-prefix: 2001:db8:12:3400::/56
        ipv4-prefix: 198.51.100.18/32
        ea-len: 0
        psid-len: 8
        psid: 0x34
      - ipv6-prefix: 2001:db8:12:3500::/56
        ipv4-prefix: 198.51.100.18/32
        ea-len: 0
        psid-len: 8
        psid: 0x35
`

// Domain is one item of a domain file's domains list: the domain name
// with DMR dmr and the rules (SeedRule, OneToOneRules or YAML indented
// like them), without the "domains:" key, so that a file can hold
// several and a test can append a kea section (indented by four).
func Domain(name, dmr string, rules ...string) string {
	return "  - name: " + name + "\n    dmr: " + dmr + "\n    rules:\n" + strings.Join(rules, "")
}
