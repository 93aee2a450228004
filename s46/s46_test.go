package s46

import (
	"bytes"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv6"

	"github.com/mapt-go/mapt/mapt"
	"github.com/mapt-go/mapt/s46/s46test"
)

// Short names for the shared vectors and helpers (s46test), which the
// tables below use a lot.
var (
	keaSeedOption95 = s46test.KeaSeedOption95
	seedRule        = s46test.SeedRule
	seedPP          = s46test.SeedPP
	seedDMR         = s46test.SeedDMR
	otherRule       = s46test.OtherRule
	unknownOpt      = s46test.UnknownOpt

	unhex      = s46test.Hex
	tlvHex     = s46test.TLV
	rule       = s46test.RuleTLV
	seedDomain = s46test.SeedDomain
)

// replyWith builds a Reply carrying opts and returns its wire bytes.
func replyWith(t testing.TB, raw []byte, opts ...dhcpv6.Option) []byte {
	t.Helper()
	m, err := dhcpv6.NewMessage()
	if err != nil {
		t.Fatal(err)
	}
	m.MessageType = dhcpv6.MessageTypeReply
	for _, o := range opts {
		m.AddOption(o)
	}
	return append(m.ToBytes(), raw...)
}

func TestKeaSeedBytes(t *testing.T) {
	wire := unhex(t, keaSeedOption95)
	want := seedDomain(t)

	// Decoded from a whole message, as the client sees it.
	m, err := dhcpv6.MessageFromBytes(replyWith(t, wire))
	if err != nil {
		t.Fatal(err)
	}
	domains, ignored := MessageDomains(m)
	if len(ignored) != 0 || len(domains) != 1 {
		t.Fatalf("MessageDomains = %v, ignored %v; want one domain", domains, ignored)
	}
	if !reflect.DeepEqual(domains[0], want) {
		t.Fatalf("domain = %+v, want %+v", domains[0], want)
	}
	r := domains[0].Rules[0]
	if r.PSIDOffset != 0 || r.SharingBits() != 5 || r.FMR {
		t.Errorf("rule %s: want a=0, k=5 from EA, no F flag", r)
	}

	// The seed CE 11b derives its documented binding from it.
	b, err := domains[0].Derive(netip.MustParsePrefix("2001:db8:ce:11b::/64"))
	if err != nil {
		t.Fatal(err)
	}
	if b.IPv4 != netip.MustParsePrefix("192.0.2.8/32") || b.PSID() != 27 || b.PortSet.Ranges()[0] != (mapt.PortRange{First: 55296, Last: 57343}) {
		t.Errorf("binding = %v psid %d %v; want 192.0.2.8/32 psid 27 55296-57343", b.IPv4, b.PSID(), b.PortSet.Ranges())
	}

	// Our encoder produces Kea's bytes exactly.
	got := appendOption(nil, NewMAPTContainer(want))
	if !bytes.Equal(got, wire) {
		t.Errorf("NewMAPTContainer bytes\n got %x\nwant %x", got, wire)
	}
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name  string
		rules []string
		dmr   string
	}{
		{"RFC 7597 A example 1", []string{"2001:db8::/40,192.0.2.0/24,16"}, "2001:db8:ffff::/64"},
		{"RFC 7597 A example 4 (EA 0)", []string{"2001:db8:12:3400::/56,192.0.2.1/32,0"}, "64:ff9b::/96"},
		{"RFC 7597 A example 5 (EA 0, PSID)", []string{"2001:db8:12:3400::/56,192.0.2.18/32,0,a=6,k=8,psid=0x34"}, "64:ff9b::/96"},
		{"seed", []string{"2001:db8:ce::/51,192.0.2.0/24,13,a=0"}, "64:ff9b::/96"},
		{"seed as FMR", []string{"2001:db8:ce::/51,192.0.2.0/24,13,a=0,fmr"}, "64:ff9b::/96"},
		{"two rules, longest match", []string{"2001:db8::/40,192.0.2.0/24,16,fmr", "2001:db8:ce::/51,198.51.100.0/24,13,a=0"}, "2001:db8:122::/48"},
		{"EA 0, k 16", []string{"2001:db8:1::/64,203.0.113.7/32,0,a=0,k=16,psid=0xffff"}, "2001:db8:122:300::/56"},
		// The shortest IPv4 prefix mapt still accepts (0/8, 127/8 and 224/3
		// are refused): prefix4-len 2, 38 EA bits.
		{"IPv4 /2, EA 38", []string{"2001:db8::/32,128.0.0.0/2,38,a=4"}, "2001:db8::/32"},
		{"IPv4 prefix per CE", []string{"2001:db8::/40,10.0.0.0/8,16"}, "64:ff9b::/40"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := mapt.Domain{DMR: netip.MustParsePrefix(tc.dmr)}
			for _, s := range tc.rules {
				d.Rules = append(d.Rules, mapt.MustParseRule(s))
			}
			c := NewMAPTContainer(d)
			got, err := ParseMAPT(c.ToBytes())
			if err != nil {
				t.Fatalf("ParseMAPT(%x): %v", c.ToBytes(), err)
			}
			if !reflect.DeepEqual(got, d) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, d)
			}
			// Through a whole DHCPv6 message too.
			m, err := dhcpv6.MessageFromBytes(replyWith(t, nil, c))
			if err != nil {
				t.Fatal(err)
			}
			ds, ignored := MessageDomains(m)
			if len(ignored) != 0 || len(ds) != 1 || !reflect.DeepEqual(ds[0], d) {
				t.Fatalf("MessageDomains = %+v, ignored %v", ds, ignored)
			}
		})
	}
}

func TestPortParamsWire(t *testing.T) {
	tests := []struct {
		wire string
		want PortParamsOption
	}{
		{"06 08 3400", PortParamsOption{Offset: 6, PSIDLen: 8, PSID: 0x34}},
		{"00 05 d800", PortParamsOption{Offset: 0, PSIDLen: 5, PSID: 27}},
		{"00 10 abcd", PortParamsOption{Offset: 0, PSIDLen: 16, PSID: 0xabcd}},
		{"04 01 8000", PortParamsOption{Offset: 4, PSIDLen: 1, PSID: 1}},
		{"06 00 0000", PortParamsOption{Offset: 6}},
	}
	for _, tc := range tests {
		var got PortParamsOption
		if err := got.FromBytes(unhex(t, tc.wire)); err != nil {
			t.Errorf("FromBytes(%s): %v", tc.wire, err)
			continue
		}
		if got != tc.want {
			t.Errorf("FromBytes(%s) = %+v, want %+v", tc.wire, got, tc.want)
		}
		if b := tc.want.ToBytes(); !bytes.Equal(b, unhex(t, tc.wire)) {
			t.Errorf("ToBytes(%+v) = %x, want %s", tc.want, b, tc.wire)
		}
	}
	// psid-len 0: the PSID field is ignored (RFC 7598 s4.5).
	var pp PortParamsOption
	if err := pp.FromBytes(unhex(t, "06 00 1234")); err != nil || pp.PSID != 0 {
		t.Errorf("psid-len 0 with a PSID field: %+v, %v; want PSID ignored", pp, err)
	}
}

func TestParseMAPTErrors(t *testing.T) {
	tests := []struct {
		name    string
		payload string // container payload, hex
		want    string // substring of the error; "" means valid
	}{
		{"seed", rule(seedRule+seedPP) + seedDMR, ""},
		{"unknown option in rule skipped", rule(seedRule+unknownOpt+seedPP) + seedDMR, ""},
		{"unknown option in container skipped", unknownOpt + rule(seedRule+seedPP) + seedDMR, ""},
		{"no portparams: a = 6", rule(otherRule) + seedDMR, ""},
		{"IPv4 /0 (this network included): ignored", rule("00 28 00 00000000 20 20010db8"+"005d 0004 04 00 0000") + seedDMR, "overlaps 0.0.0.0/8"},
		{"empty", "", "no S46_RULE (89)"},
		{"truncated header", rule(seedRule+seedPP) + seedDMR + "005b00", "3 trailing bytes"},
		{"option longer than container", rule(seedRule+seedPP) + "005b 00ff 60", "S46_DMR (91): option-length 255 exceeds"},
		{"rule too short", rule("00 0d 18 c0000200"), "S46_RULE (89): option-length 7, want at least 8"},
		{"prefix4-len 33", rule("00 0d 21 c0000200 33 20010db800ce00") + seedDMR, "prefix4-len 33"},
		{"prefix6-len 129", rule("00 0d 18 c0000200 81") + seedDMR, "prefix length 129"},
		{"prefix6 octets missing", rule("00 0d 18 c0000200 33 20010db8") + seedDMR, "/51 needs 7 octets, only 4 present"},
		{"sub-option truncated in rule", rule(seedRule+"005d 0004 00") + seedDMR, "S46_PORTPARAMS (93): option-length 4 exceeds the 1 bytes left"},
		{"portparams short", rule(seedRule+"005d 0003 00 00 00") + seedDMR, "S46_PORTPARAMS (93): option-length 3, want 4"},
		{"portparams offset 16", rule(seedRule+"005d 0004 10 00 0000") + seedDMR, "offset 16: outside 0-15"},
		{"psid-len 17", rule(seedRule+"005d 0004 00 11 0000") + seedDMR, "psid-len 17"},
		{"psid right-aligned", rule("00 00 20 c0000212 38 20010db8001234"+"005d 0004 06 08 0034") + seedDMR, "psid 0x0034: bits set past psid-len 8"},
		{"two portparams", rule(seedRule+seedPP+seedPP) + seedDMR, "more than one S46_PORTPARAMS"},
		{"no DMR", rule(seedRule + seedPP), "0 S46_DMR (91) options"},
		{"two DMRs", rule(seedRule+seedPP) + seedDMR + seedDMR, "2 S46_DMR (91) options"},
		{"BR not permitted", rule(seedRule+seedPP) + seedDMR + "005a 0010 20010db8000000000000000000000001", "S46_BR (90) is not permitted"},
		{"BR wrong length", rule(seedRule+seedPP) + seedDMR + "005a 0004 20010db8", "S46_BR (90): option-length 4, want 16"},
		{"DMR trailing bytes", rule(seedRule+seedPP) + "005b 000e 60 0064ff9b000000000000000000", "1 bytes after the /96 prefix"},
		{"DMR not RFC 6052", rule(seedRule+seedPP) + "005b 0006 21 0064ff9b00", "/33"},
		{"DMR empty", rule(seedRule+seedPP) + "005b 0000", "missing prefix length"},
		{"a + k > 16", rule(seedRule+"005d 0004 0c 00 0000") + seedDMR, "psid-offset 12 + psid-len 5 > 16"},
		{"EA > 48", rule("00 31 00 00000000 20 20010db8") + seedDMR, "ea-len 49"},
		{"PSID with EA bits", rule(seedRule+"005d 0004 00 05 0800") + seedDMR, "only rules with EA length 0 carry a PSID"},
		{"psid-len disagrees with EA", rule(seedRule+"005d 0004 00 04 0000") + seedDMR, "psid-len 4: EA bits give 5"},
		{"same rule prefix twice", rule(seedRule+seedPP) + rule("00 0d 18 c6336400 33 20010db800ce00") + seedDMR, "also the prefix of rule"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := ParseMAPT(unhex(t, tc.payload))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("ParseMAPT: %v", err)
				}
				if len(d.Rules) == 0 || !d.DMR.IsValid() {
					t.Fatalf("ParseMAPT = %+v: want rules and a DMR", d)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseMAPT error = %v, want one containing %q", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "s46: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestRuleDefaults(t *testing.T) {
	d, err := ParseMAPT(unhex(t, rule(otherRule)+seedDMR))
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Rules[0]; got.PSIDOffset != 6 || got.SharingBits() != 8 {
		t.Errorf("rule without PORTPARAMS = %s, want a=6, k=8", got)
	}
	// F flag is the low bit; the other bits are reserved and do not set it.
	for flags, fmr := range map[string]bool{"01": true, "80": false, "fe": false, "ff": true} {
		d, err := ParseMAPT(unhex(t, rule(flags+seedRule[2:]+seedPP)+seedDMR))
		if err != nil {
			t.Fatal(err)
		}
		if d.Rules[0].FMR != fmr {
			t.Errorf("flags %s: FMR = %v, want %v", flags, d.Rules[0].FMR, fmr)
		}
	}
	// Padding bits past prefix6-len and host bits past prefix4-len are masked.
	d, err = ParseMAPT(unhex(t, rule("00 0d 18 c00002ff 33 20010db800ffff"+seedPP)+seedDMR))
	if err != nil {
		t.Fatal(err)
	}
	if r := d.Rules[0]; r.IPv6Prefix != netip.MustParsePrefix("2001:db8:ff:e000::/51") || r.IPv4Prefix != netip.MustParsePrefix("192.0.2.0/24") {
		t.Errorf("masked rule = %s", r)
	}
}

func TestDomainsIgnoresBadContainers(t *testing.T) {
	noDMR := unhex(t, tlvHex(95, rule(seedRule+seedPP)))
	bareRule := unhex(t, rule(otherRule)) // S46 option outside a container
	mape := unhex(t, tlvHex(94, rule(otherRule)+"005a 0010 20010db8000000000000000000000001"))
	wire := append(append(append(append([]byte{}, noDMR...), bareRule...), mape...), unhex(t, keaSeedOption95)...)
	m, err := dhcpv6.MessageFromBytes(replyWith(t, wire))
	if err != nil {
		t.Fatal(err)
	}
	domains, ignored := MessageDomains(m)
	if len(domains) != 1 || !reflect.DeepEqual(domains[0], seedDomain(t)) {
		t.Errorf("domains = %+v, want only the seed's", domains)
	}
	if len(ignored) != 1 || !strings.Contains(ignored[0], "MAP-T container 1 ignored") || !strings.Contains(ignored[0], "S46_DMR") {
		t.Errorf("ignored = %q, want one line about container 1's missing DMR", ignored)
	}
}

func TestContainerKinds(t *testing.T) {
	br := netip.MustParseAddr("2001:db8::1")
	c := &Container{Kind: OptionContMAPE, Options: dhcpv6.Options{NewRuleOption(mapt.MustParseRule("2001:db8::/40,192.0.2.0/24,16")), &BROption{Addr: br}}}
	p, err := ParseContainer(OptionContMAPE, c.ToBytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Options) != 2 || p.Options[1].(*BROption).Addr != br {
		t.Fatalf("MAP-E container = %s", p)
	}
	if _, err := p.Domain(); err == nil || !strings.Contains(err.Error(), "not a MAP-T container") {
		t.Errorf("Domain of a MAP-E container: %v", err)
	}
	if _, err := ParseContainer(OptionRule, nil); err == nil {
		t.Error("ParseContainer(89) succeeded, want an error")
	}
	lw := &Container{Kind: OptionContLW}
	if err := lw.FromBytes(unhex(t, "005a 0010 20010db8000000000000000000000001")); err != nil || len(lw.Options) != 1 {
		t.Errorf("LW container: %v %v", lw, err)
	}
}
