package mapt

import (
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestDeriveVectors(t *testing.T) {
	tests := []struct {
		name       string
		rule       string
		eup        string
		ipv4       string
		psid       uint16
		k, a       uint8
		first      []PortRange // leading ranges
		last       PortRange
		count      int
		mapAddress string
	}{
		{
			name: "RFC 7597 A example 1 (BMR, shared address)",
			rule: "2001:db8::/40,192.0.2.0/24,16", eup: "2001:db8:12:3400::/56",
			ipv4: "192.0.2.18/32", psid: 0x34, k: 8, a: 6,
			first: []PortRange{{1232, 1235}, {2256, 2259}}, last: PortRange{64720, 64723}, count: 252,
			mapAddress: "2001:db8:12:3400:0:c000:212:34",
		},
		{
			name: "RFC 7597 A example 4 (EA 0, no sharing)",
			rule: "2001:db8:12:3400::/56,192.0.2.1/32,0", eup: "2001:db8:12:3400::/56",
			ipv4: "192.0.2.1/32", psid: 0, k: 0, a: 6,
			first: []PortRange{{0, 65535}}, last: PortRange{0, 65535}, count: 65536,
			mapAddress: "2001:db8:12:3400:0:c000:201:0",
		},
		{
			name: "RFC 7597 A example 5 (EA 0, sharing from PORTPARAMS)",
			rule: "2001:db8:12:3400::/56,192.0.2.18/32,0,a=6,k=8,psid=0x34", eup: "2001:db8:12:3400::/56",
			ipv4: "192.0.2.18/32", psid: 0x34, k: 8, a: 6,
			first: []PortRange{{1232, 1235}, {2256, 2259}}, last: PortRange{64720, 64723}, count: 252,
			mapAddress: "2001:db8:12:3400:0:c000:212:34",
		},
		{
			name: "seed CE 11b",
			rule: "2001:db8:ce::/51,192.0.2.0/24,13,a=0", eup: "2001:db8:ce:11b::/64",
			ipv4: "192.0.2.8/32", psid: 27, k: 5, a: 0,
			first: []PortRange{{55296, 57343}}, last: PortRange{55296, 57343}, count: 2048,
			mapAddress: "2001:db8:ce:11b:0:c000:208:1b",
		},
		{
			name: "seed CE 774 (the tutorial's 28672-30719 is wrong)",
			rule: "2001:db8:ce::/51,192.0.2.0/24,13,a=0", eup: "2001:db8:ce:774::/64",
			ipv4: "192.0.2.59/32", psid: 20, k: 5, a: 0,
			first: []PortRange{{40960, 43007}}, last: PortRange{40960, 43007}, count: 2048,
			mapAddress: "2001:db8:ce:774:0:c000:23b:14",
		},
		{
			name: "EA + r = 32: full address",
			rule: "2001:db8::/40,192.0.2.0/24,8", eup: "2001:db8:12::/48",
			ipv4: "192.0.2.18/32", psid: 0, k: 0, a: 6,
			first: []PortRange{{0, 65535}}, last: PortRange{0, 65535}, count: 65536,
			mapAddress: "2001:db8:12:0:0:c000:212:0",
		},
		{
			name: "EA + r < 32: IPv4 prefix",
			rule: "2001:db8::/40,10.0.0.0/8,16", eup: "2001:db8:12:3400::/56",
			ipv4: "10.18.52.0/24", psid: 0, k: 0, a: 6,
			first: []PortRange{{0, 65535}}, last: PortRange{0, 65535}, count: 65536,
			mapAddress: "2001:db8:12:3400:0:a12:3400:0",
		},
		{
			name: "r = 32 with EA bits: every EA bit is PSID",
			rule: "2001:db8:ff00::/40,192.0.2.7/32,6,a=2", eup: "2001:db8:ff08::/46",
			ipv4: "192.0.2.7/32", psid: 2, k: 6, a: 2,
			first: []PortRange{{16384 + 2*256, 16384 + 2*256 + 255}}, last: PortRange{49152 + 512, 49152 + 512 + 255}, count: 3 * 256,
			mapAddress: "2001:db8:ff08:0:0:c000:207:2",
		},
		{
			name: "a = 0 k = 16: one port",
			rule: "2001:db8::/32,192.0.2.0/24,24,a=0", eup: "2001:db8:0501:2300::/56",
			ipv4: "192.0.2.5/32", psid: 0x0123, k: 16, a: 0,
			first: []PortRange{{0x0123, 0x0123}}, last: PortRange{0x0123, 0x0123}, count: 1,
			mapAddress: "2001:db8:501:2300:0:c000:205:123",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := MustParseRule(tc.rule)
			b, err := r.Derive(netip.MustParsePrefix(tc.eup))
			if err != nil {
				t.Fatal(err)
			}
			if got := b.IPv4.String(); got != tc.ipv4 {
				t.Errorf("ipv4 = %s, want %s", got, tc.ipv4)
			}
			if b.PSID() != tc.psid || b.PortSet.Len != tc.k || b.PortSet.Offset != tc.a {
				t.Errorf("psid/k/a = %d/%d/%d, want %d/%d/%d", b.PSID(), b.PortSet.Len, b.PortSet.Offset, tc.psid, tc.k, tc.a)
			}
			rs := b.PortSet.Ranges()
			for i, want := range tc.first {
				if rs[i] != want {
					t.Errorf("range %d = %v, want %v", i, rs[i], want)
				}
			}
			if rs[len(rs)-1] != tc.last {
				t.Errorf("last range = %v, want %v", rs[len(rs)-1], tc.last)
			}
			if b.PortSet.Count() != tc.count {
				t.Errorf("count = %d, want %d", b.PortSet.Count(), tc.count)
			}
			if want := netip.MustParseAddr(tc.mapAddress); b.MAPAddress != want {
				t.Errorf("map address = %s, want %s", b.MAPAddress, want)
			}
		})
	}
}

// TestLongPrefixes: the MAP address is built on the rule's end-user prefix
// (ipv6-prefix + EA bits), which the BR knows; it overwrites the interface
// identifier only when that prefix is longer than /64 (RFC 7599 s6). A
// delegated prefix longer than the rule's is used when the MAP address
// lies inside it, and refused otherwise, so that CE and BR never disagree.
func TestLongPrefixes(t *testing.T) {
	r := MustParseRule("2001:db8::/48,192.0.2.0/24,16,a=6") // end-user prefixes /64
	for _, c := range []struct {
		eup, want string // want "" = refused
	}{
		{"2001:db8:0:1234::/64", "2001:db8:0:1234:0:c000:212:34"},
		{"2001:db8:0:1234::/72", "2001:db8:0:1234:0:c000:212:34"},
		{"2001:db8:0:1234:0:c000:212:34/128", "2001:db8:0:1234:0:c000:212:34"},
		{"2001:db8:0:1234:ab00::/72", ""},
		{"2001:db8:0:1234:1::/80", ""},
	} {
		b, err := r.Derive(netip.MustParsePrefix(c.eup))
		if c.want == "" {
			if err == nil || !strings.Contains(err.Error(), "longer than the rule's /64") {
				t.Errorf("%s: binding %v, err %v: want refused", c.eup, b.MAPAddress, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.eup, err)
			continue
		}
		if b.MAPAddress != netip.MustParseAddr(c.want) {
			t.Errorf("%s: map address %s, want %s", c.eup, b.MAPAddress, c.want)
		}
		// The BR derives the same.
		v4, bb, err := r.MapIPv6(b.MAPAddress)
		if err != nil || v4 != b.IPv4.Addr() || bb.MAPAddress != b.MAPAddress {
			t.Errorf("%s: BR maps %s to %v %v (%v)", c.eup, b.MAPAddress, v4, bb.MAPAddress, err)
		}
	}
	// A rule whose end-user prefixes are /72: the prefix overwrites the
	// interface identifier's first octet, on both sides.
	r72 := MustParseRule("2001:db8:0:1200::/56,192.0.2.0/24,16,a=6")
	b, err := r72.Derive(netip.MustParsePrefix("2001:db8:0:1234:ab00::/72"))
	if err != nil {
		t.Fatal(err)
	}
	// EA 0x34ab: 192.0.2.52, PSID 0xab; the IID 0:c000:234:ab keeps its
	// 56 low bits behind the /72.
	if want := netip.MustParseAddr("2001:db8:0:1234:ab00:c000:234:ab"); b.MAPAddress != want {
		t.Fatalf("/72 rule: map address = %s, want %s", b.MAPAddress, want)
	}
	if _, bb, err := r72.MapIPv6(b.MAPAddress); err != nil || bb.MAPAddress != b.MAPAddress {
		t.Fatalf("/72 rule: BR maps to %v (%v)", bb.MAPAddress, err)
	}
}

// TestNonUnicastRules: a rule's IPv4 prefix must be unicast space a CE
// can be given; the error names the rule and the field.
func TestNonUnicastRules(t *testing.T) {
	for _, s := range []string{
		"2001:db8::/32,0.0.0.0/0,40,a=4",
		"2001:db8::/40,0.1.2.0/24,16",
		"2001:db8::/40,127.0.0.0/24,16",
		"2001:db8::/40,224.1.0.0/24,16",
		"2001:db8::/40,240.0.0.0/24,16",
		"2001:db8:12:3400::/56,255.255.255.255/32,0",
	} {
		_, err := ParseRule(s)
		if err == nil || !strings.Contains(err.Error(), "ipv4-prefix: overlaps") || !strings.Contains(err.Error(), "mapt: rule ") {
			t.Errorf("%s: %v, want refused naming the rule and ipv4-prefix", s, err)
		}
	}
	if _, err := ParseRule("2001:db8::/40,192.0.2.0/24,16"); err != nil {
		t.Errorf("unicast rule refused: %v", err)
	}
}

// RFC 7599 Appendix A examples 2 and 3 (numbers from RFC 7597, whose text
// has no typos): BR 4->6 and CE 4->6 with DMR 2001:db8:ffff::/64.
func TestRFC7599AppendixA(t *testing.T) {
	fmr := MustParseRule("2001:db8::/40,192.0.2.0/24,16")
	dmr := netip.MustParsePrefix("2001:db8:ffff::/64")
	if err := ValidateDMR(dmr); err != nil {
		t.Fatal(err)
	}
	// Example 2: 10.2.3.4:80 -> 192.0.2.18:1232 at the BR.
	dst, _, err := fmr.MapIPv4(netip.MustParseAddr("192.0.2.18"), 1232)
	if err != nil {
		t.Fatal(err)
	}
	if want := netip.MustParseAddr("2001:db8:12:3400:0:c000:212:34"); dst != want {
		t.Errorf("BR dst = %s, want %s", dst, want)
	}
	src := Embed(dmr, netip.MustParseAddr("10.2.3.4"))
	if want := netip.MustParseAddr("2001:db8:ffff:0:a:203:400:0"); src != want {
		t.Errorf("BR src = %s, want %s", src, want)
	}
	// Example 3: the CE's reply; the destination is the DMR embedding.
	if v4, ok := Extract(dmr, src); !ok || v4 != netip.MustParseAddr("10.2.3.4") {
		t.Errorf("Extract = %s %v", v4, ok)
	}
	// The BR's reverse check of the CE source (s8.3).
	v4, b, err := fmr.MapIPv6(dst)
	if err != nil || v4 != netip.MustParseAddr("192.0.2.18") || !b.PortSet.Contains(1232) || b.PortSet.Contains(1236) {
		t.Errorf("MapIPv6 = %s %v %v", v4, b.PortSet, err)
	}
}

func TestRFC6052(t *testing.T) {
	v4 := netip.MustParseAddr("192.0.2.33")
	// RFC 6052 s2.4 table.
	tests := []struct{ prefix, addr string }{
		{"2001:db8::/32", "2001:db8:c000:221::"},
		{"2001:db8:100::/40", "2001:db8:1c0:2:21::"},
		{"2001:db8:122::/48", "2001:db8:122:c000:2:2100::"},
		{"2001:db8:122:300::/56", "2001:db8:122:3c0:0:221::"},
		{"2001:db8:122:344::/64", "2001:db8:122:344:c0:2:2100:0"},
		{"2001:db8:122:344::/96", "2001:db8:122:344::192.0.2.33"},
		{"64:ff9b::/96", "64:ff9b::c000:221"},
	}
	for _, tc := range tests {
		p := netip.MustParsePrefix(tc.prefix)
		if err := ValidateDMR(p); err != nil {
			t.Fatal(err)
		}
		got := Embed(p, v4)
		if want := netip.MustParseAddr(tc.addr); got != want {
			t.Errorf("Embed(%s) = %s, want %s", p, got, want)
		}
		back, ok := Extract(p, got)
		if !ok || back != v4 {
			t.Errorf("Extract(%s, %s) = %s %v", p, got, back, ok)
		}
	}
	if _, ok := Extract(netip.MustParsePrefix("2001:db8::/32"), netip.MustParseAddr("2001:db8:c000:221:100::")); ok {
		t.Error("Extract accepted a non-zero u-octet")
	}
}

func TestValidateErrors(t *testing.T) {
	tests := []struct{ rule, want string }{
		{"2001:db8::/40,192.0.2.0/24,16,a=10", "psid-offset 10 + psid-len 8 > 16"},
		{"2001:db8::/40,192.0.2.0/24,49", "ea-len 49"},
		{"2001:db8::/40,192.0.2.0/24,32", "gives a PSID of 24 bits"},
		{"2001:db8::/40,192.0.2.0/24,16,k=4", "psid-len 4: EA bits give 8"},
		{"2001:db8::/40,192.0.2.1/24,16", "ipv4-prefix: host bits set"},
		{"2001:db8::1/40,192.0.2.0/24,16", "ipv6-prefix: host bits set"},
		{"2001:db8::/40,2001:db8::/24,16", "ipv4-prefix"},
		{"192.0.2.0/24,192.0.2.0/24,16", "ipv6-prefix"},
		{"2001:db8::/56,192.0.2.1/32,0,k=4,psid=16", "psid 16: does not fit"},
		{"2001:db8::/56,192.0.2.1/32,0,psid=1", "psid given without k"},
		{"2001:db8::/56,192.0.2.1/32,0,b=1", "unknown field"},
		{"2001:db8::/56,192.0.2.1/32", "want IPV6PREFIX"},
		{"2001:db8::/56,192.0.2.1/32,x", "ea-len \"x\""},
		{"2001:db8::/56,192.0.2.1/32,0,a=70000", "a=\"70000\""},
		{"2001:db8::/120,192.0.2.0/24,16", "exceed 128"},
	}
	for _, tc := range tests {
		_, err := ParseRule(tc.rule)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseRule(%q) = %v, want error containing %q", tc.rule, err, tc.want)
		}
	}
	r := MustParseRule("2001:db8::/40,192.0.2.0/24,16")
	if _, err := r.Derive(netip.MustParsePrefix("2001:db8:12::/48")); err == nil || !strings.Contains(err.Error(), "shorter than rule prefix /40 + 16 EA bits") {
		t.Errorf("short end-user prefix: %v", err)
	}
	if _, err := r.Derive(netip.MustParsePrefix("2001:db9::/56")); !errors.Is(err, ErrNoMatch) {
		t.Errorf("foreign end-user prefix: %v", err)
	}
	for _, d := range []string{"2001:db8::/33", "64:ff9b::/97", "2001:db8:0:0:100::/96", "192.0.2.0/24"} {
		if err := ValidateDMR(netip.MustParsePrefix(d)); err == nil {
			t.Errorf("ValidateDMR(%s) accepted", d)
		}
	}
}

func TestRuleStringRoundTrip(t *testing.T) {
	for _, s := range []string{
		"2001:db8::/40,192.0.2.0/24,16,a=6,k=8",
		"2001:db8:ce::/51,192.0.2.0/24,13,a=0,k=5,fmr",
		"2001:db8:12:3400::/56,192.0.2.18/32,0,a=6,k=8,psid=52",
		"2001:db8:12:3400::/56,192.0.2.1/32,0,a=6",
	} {
		r := MustParseRule(s)
		if r.String() != s {
			t.Errorf("String() = %q, want %q", r.String(), s)
		}
		if r2 := MustParseRule(r.String()); r2 != r {
			t.Errorf("round trip %q: %+v != %+v", s, r2, r)
		}
	}
}

func TestSelectBMR(t *testing.T) {
	rules := []Rule{
		MustParseRule("2001:db8::/32,198.51.100.0/24,16"),
		MustParseRule("2001:db8:ce::/51,192.0.2.0/24,13,a=0"),
		MustParseRule("2001:db9::/40,203.0.113.0/24,16"),
	}
	r, err := SelectBMR(rules, netip.MustParsePrefix("2001:db8:ce:11b::/64"))
	if err != nil || r != rules[1] {
		t.Fatalf("SelectBMR = %v, %v; want the /51", r, err)
	}
	r, err = SelectBMR(rules, netip.MustParsePrefix("2001:db8:1:100::/56"))
	if err != nil || r != rules[0] {
		t.Fatalf("SelectBMR = %v, %v; want the /32", r, err)
	}
	if _, err := SelectBMR(rules, netip.MustParsePrefix("2001:dba::/56")); !errors.Is(err, ErrNoMatch) {
		t.Fatalf("SelectBMR without match: %v", err)
	}
	// A rule shorter than the end-user prefix's rule, in any order.
	rev := []Rule{rules[2], rules[1], rules[0]}
	if r, _ := SelectBMR(rev, netip.MustParsePrefix("2001:db8:ce:774::/64")); r != rules[1] {
		t.Fatalf("order-dependent: %v", r)
	}
}

func TestDomainValidate(t *testing.T) {
	d := Domain{DMR: netip.MustParsePrefix("64:ff9b::/96"), Rules: []Rule{
		MustParseRule("2001:db8:ce::/51,192.0.2.0/24,13,a=0"),
		MustParseRule("2001:db8:12:3400::/56,198.51.100.1/32,0,a=6,k=8,psid=1"),
		MustParseRule("2001:db8:12:3500::/56,198.51.100.1/32,0,a=6,k=8,psid=2"),
	}}
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := d
	bad.Rules = append(append([]Rule{}, d.Rules...), MustParseRule("2001:db8:cf::/48,192.0.2.128/25,8"))
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "overlaps rule") {
		t.Fatalf("overlap: %v", err)
	}
	bad.Rules = append(append([]Rule{}, d.Rules...), MustParseRule("2001:db8:ce::/51,203.0.113.0/24,13"))
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "also the prefix") {
		t.Fatalf("same ipv6 prefix: %v", err)
	}
	bad = d
	bad.DMR = netip.MustParsePrefix("64:ff9b::/80")
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "dmr") {
		t.Fatalf("dmr: %v", err)
	}
}

func TestMapIPv4LongestMatch(t *testing.T) {
	rules := []Rule{
		MustParseRule("2001:db8::/40,192.0.2.0/24,16"),
		MustParseRule("2001:db8:ff:100::/56,192.0.3.1/32,0,a=6,k=8,psid=1"),
		MustParseRule("2001:db8:ff:200::/56,192.0.3.1/32,0,a=6,k=8,psid=2"),
	}
	p := rules[1].Params()
	port := uint16(1<<10 | 2<<2) // A = 1, PSID 2
	if p.PSIDOf(port) != 2 {
		t.Fatal("test port")
	}
	dst, b, err := MapIPv4(rules, netip.MustParseAddr("192.0.3.1"), port)
	if err != nil || b.Rule != rules[2] || dst != netip.MustParseAddr("2001:db8:ff:200:0:c000:301:2") {
		t.Fatalf("MapIPv4 = %s %v %v", dst, b.Rule, err)
	}
	if _, _, err := MapIPv4(rules, netip.MustParseAddr("192.0.3.1"), uint16(1<<10|3<<2)); !errors.Is(err, ErrNoMatch) {
		t.Fatalf("PSID 3 owned by nobody: %v", err)
	}
	// a > 0: ports with A = 0 belong to no CE.
	if _, _, err := MapIPv4(rules, netip.MustParseAddr("192.0.2.18"), 0x34<<2); !errors.Is(err, ErrNoMatch) {
		t.Fatalf("A = 0 port: %v", err)
	}
}

func TestExtendPrefix(t *testing.T) {
	got, err := ExtendPrefix(netip.MustParsePrefix("2001:db8:ce::/51"), 13, 0x774)
	if err != nil || got != netip.MustParsePrefix("2001:db8:ce:774::/64") {
		t.Fatalf("ExtendPrefix = %s %v", got, err)
	}
	got, err = ExtendPrefix(netip.MustParsePrefix("192.0.2.0/24"), 8, 59)
	if err != nil || got != netip.MustParsePrefix("192.0.2.59/32") {
		t.Fatalf("ExtendPrefix v4 = %s %v", got, err)
	}
	if _, err := ExtendPrefix(netip.MustParsePrefix("192.0.2.0/24"), 9, 0); err == nil {
		t.Fatal("ExtendPrefix past 32 bits accepted")
	}
}

func TestPortSetValidate(t *testing.T) {
	for _, ok := range []PortSet{{}, {PortParams{6, 8}, 0xff}, {PortParams{0, 16}, 0xffff}} {
		if err := ok.Validate(); err != nil {
			t.Errorf("%+v: %v", ok, err)
		}
	}
	for _, bad := range []PortSet{{PortParams{10, 8}, 0}, {PortParams{6, 4}, 16}, {PortParams{16, 0}, 0}} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestBindingJSON(t *testing.T) {
	r, err := ParseRule("2001:db8:ce::/51,192.0.2.0/24,13,a=0")
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.Derive(netip.MustParsePrefix("2001:db8:ce:774::/64"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.Marshal(b.JSON(netip.MustParsePrefix("64:ff9b::/96")))
	if err != nil {
		t.Fatal(err)
	}
	// The schema of `ce-agent derive --json` (cmd/ce-agent/testdata/seed-774.json).
	want := `{"rule":"2001:db8:ce::/51,192.0.2.0/24,13,a=0,k=5","end_user_prefix":"2001:db8:ce:774::/64","ipv4":"192.0.2.59/32","psid":20,"psid_len":5,"psid_offset":0,"ports":[[40960,43007]],"port_count":2048,"map_address":"2001:db8:ce:774:0:c000:23b:14","dmr":"64:ff9b::/96"}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if j := b.JSON(netip.Prefix{}); j.DMR != "" || len(j.Ports) != 1 {
		t.Fatalf("without DMR: %+v", j)
	}
}
