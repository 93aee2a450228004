package domainfile

import (
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mapt-go/mapt/domainfile/domaintest"
	"github.com/mapt-go/mapt/mapt"
)

func TestLoadSeed(t *testing.T) {
	f, err := Load("testdata/seed.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if f.BR.IPv6Interface != "eth0" || f.BR.IPv4Interface != "eth1" || f.BR.Metrics != DefaultMetrics ||
		f.BR.LowestIPv6MTU != 1280 || f.BR.ICMPSource.IsValid() || f.BR.ICMPRate != DefaultICMPRate || !f.BR.FastPath ||
		f.BR.TrafficClass.Set || f.BR.TOS.Set {
		t.Fatalf("br = %+v", f.BR)
	}
	d, err := f.Domain("")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := mapt.ParseRule("2001:db8:ce::/51,192.0.2.0/24,13,a=0,fmr")
	if d.Name != "seed" || d.DMR != netip.MustParsePrefix("64:ff9b::/96") || len(d.Rules) != 1 || d.Rules[0] != want {
		t.Fatalf("domain = %+v", d)
	}
	if d.Kea.Subnet != netip.MustParsePrefix("2001:db8:6::/64") {
		t.Fatalf("kea = %+v", d.Kea)
	}
	b, err := d.Derive(netip.MustParsePrefix("2001:db8:ce:774::/64"))
	if err != nil || b.IPv4.Addr() != netip.MustParseAddr("192.0.2.59") || b.PSID() != 20 {
		t.Fatalf("derive: %+v %v", b, err)
	}
}

func TestLoadMulti(t *testing.T) {
	f, err := Load("testdata/multi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if f.BR.Metrics != "[::1]:9900" || len(f.Domains) != 2 || len(f.Rules()) != 3 ||
		f.BR.LowestIPv6MTU != 1400 || f.BR.ICMPSource != netip.MustParseAddr("198.51.100.1") || f.BR.ICMPRate != 20 || f.BR.FastPath ||
		f.BR.TrafficClass != (mapt.DSField{Set: true}) || f.BR.TOS != (mapt.DSField{Set: true, Value: 0xb8}) {
		t.Fatalf("file = %+v", f)
	}
	if _, err := f.Domain(""); err == nil || !strings.Contains(err.Error(), "has 2 domains (shared, one-to-one)") {
		t.Fatalf("Domain(\"\") = %v", err)
	}
	d, err := f.Domain("one-to-one")
	if err != nil || d.Rules[1].PSID != 0x35 || d.Rules[1].PSIDLen != 8 || d.Rules[1].PSIDOffset != 6 {
		t.Fatalf("one-to-one: %+v %v", d, err)
	}
	if _, err := f.Domain("nope"); err == nil {
		t.Fatal("unknown domain accepted")
	}
}

func TestLoadISP(t *testing.T) {
	f, err := Load("testdata/isp.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if a := f.BR.Anycast; a.Table != 9724 || a.Drain != 1500*time.Millisecond || a.CheckInterval != DefaultCheckInterval ||
		len(a.RequireRoutes) != 2 || a.RequireRoutes[1] != netip.MustParseAddr("203.0.113.56") {
		t.Fatalf("anycast = %+v", f.BR.Anycast)
	}
	k := f.Domains[0].Kea
	if k.Interface != "eth0/2001:db8:6::53" || len(k.Relay) != 1 || k.InterfaceID != "ge-0/0/1.100" || len(k.ServerDUID) != 10 {
		t.Fatalf("selection/duid: %+v", k)
	}
	if k.ValidLifetime != 86400 || k.PreferredLifetime != 43200 || k.RenewTimer != 21600 || k.RebindTimer != 32400 {
		t.Fatalf("lifetimes: %+v", k)
	}
	if len(k.DNSServers) != 1 || k.DomainSearch[0] != "isp.example" || k.NTPServers[0].FQDN != "ntp.isp.example" || k.NTPServers[1].String() != "2001:db8::123" {
		t.Fatalf("dns/ntp: %+v", k)
	}
	if k.MAPEBR != netip.MustParseAddr("2001:db8:ff::1") || k.DSLiteAFTR != "aftr.isp.example" || strings.Join(k.Priority, ",") != "mapt,mape,dslite" {
		t.Fatalf("softwires: %+v", k)
	}
	if len(k.Reservations) != 2 || k.Reservations[0].Prefix != netip.MustParsePrefix("2001:db8:12:3400::/56") || len(k.Reservations[1].DUID) != 10 {
		t.Fatalf("reservations: %+v", k.Reservations)
	}
	// Without an anycast section it is off.
	if f, _ := Load("testdata/seed.yaml"); f.BR.Anycast.Table != 0 {
		t.Fatalf("seed anycast = %+v", f.BR.Anycast)
	}
}

// okDomain is a valid file of one domain, the seed's: its lines 1-8 are
// domains, name, dmr, rules, and the rule's ipv6-prefix, ipv4-prefix,
// ea-len and psid-offset (TestErrors counts on them).
var okDomain = "domains:\n" + domaintest.Domain("a", domaintest.DMR, domaintest.SeedRule(0))

// keaSection is a kea section with the given lines (indented for it).
func keaSection(lines string) string {
	return "    kea:\n      subnet: 2001:db8:6::/64\n      " + lines + "\n"
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown top key", "domain: []\n", "f.yaml:1: domain: unknown key"},
		{"unknown rule key", okDomain + "        psid-ofset: 3\n", "f.yaml:9: domains[0].rules[0].psid-ofset: unknown key"},
		{"duplicate key", okDomain + "        ea-len: 12\n", "f.yaml:9: domains[0].rules[0].ea-len: given twice (first on line 7)"},
		{"bad prefix", strings.Replace(okDomain, "192.0.2.0/24", "192.0.2.0/33", 1), `f.yaml:6: domains[0].rules[0].ipv4-prefix: "192.0.2.0/33" is not an IPv4 prefix`},
		{"host bits", strings.Replace(okDomain, "192.0.2.0/24", "192.0.2.1/24", 1), "f.yaml:6: domains[0].rules[0].ipv4-prefix: 192.0.2.1/24 has host bits set"},
		{"a + k > 16", strings.Replace(okDomain, "psid-offset: 0", "psid-offset: 12", 1), "f.yaml:8: domains[0].rules[0].psid-offset: rule 2001:db8:ce::/51,192.0.2.0/24,13,a=12,k=5: psid-offset 12 + psid-len 5 > 16"},
		{"ea too long", strings.Replace(okDomain, "ea-len: 13", "ea-len: 49", 1), `f.yaml:7: domains[0].rules[0].ea-len: "49" is not a number in 0-48`},
		{"psid too wide", strings.Replace(okDomain, "ea-len: 13", "ea-len: 30", 1), "f.yaml:7: domains[0].rules[0].ea-len: rule 2001:db8:ce::/51,192.0.2.0/24,30,a=0,k=22: ea-len 30: gives a PSID of 22 bits"},
		{"not a number", strings.Replace(okDomain, "ea-len: 13", "ea-len: thirteen", 1), `f.yaml:7: domains[0].rules[0].ea-len: "thirteen" is not a number`},
		{"bad dmr", strings.Replace(okDomain, "64:ff9b::/96", "64:ff9b::/80", 1), "f.yaml:3: domains[0].dmr: dmr 64:ff9b::/80: length /80 is not one of RFC 6052's"},
		{"no dmr", strings.Replace(okDomain, "    dmr: 64:ff9b::/96\n", "", 1), "f.yaml:2: domains[0].dmr: missing"},
		{"no ea-len", strings.Replace(okDomain, "        ea-len: 13\n", "", 1), "f.yaml:5: domains[0].rules[0].ea-len: missing"},
		{"psid without k", strings.Replace(okDomain, "ea-len: 13", "ea-len: 0\n        psid: 3", 1), "f.yaml:8: domains[0].rules[0].psid: given without psid-len"},
		{"overlap", okDomain + "      - ipv6-prefix: 2001:db8:cf::/48\n        ipv4-prefix: 192.0.2.128/25\n        ea-len: 8\n", "f.yaml:9: domains[0].rules[1]: overlaps domains[0].rules[0]"},
		{"overlap across domains", okDomain + "  - name: b\n    dmr: 64:ff9b::/96\n    rules:\n      - ipv6-prefix: 2001:db8:cf::/48\n        ipv4-prefix: 192.0.2.0/25\n        ea-len: 7\n", `f.yaml:9: domains[1].rules: overlaps domain "a"`},
		{"duplicate domain", okDomain + "  - name: a\n    dmr: 64:ff9b::/96\n    rules:\n      - ipv6-prefix: 2001:db8:cf::/48\n        ipv4-prefix: 198.51.100.0/24\n        ea-len: 8\n", `domains[1].name: domain "a" is defined twice (line 2)`},
		{"no domains", "br:\n  ipv6-interface: eth0\n", "f.yaml:1: domains: no domains defined"},
		{"empty", "", "f.yaml:1: empty file"},
		{"syntax", "domains: [\n", "f.yaml:"},
		{"metrics", "br:\n  metrics: localhost\n" + okDomain, `f.yaml:2: br.metrics: "localhost" is not ADDRESS:PORT`},
		{"icmp-source", "br:\n  icmp-source: 2001:db8::1\n" + okDomain, `f.yaml:2: br.icmp-source: "2001:db8::1" is not a unicast IPv4 address`},
		{"icmp-source broadcast", "br:\n  icmp-source: 255.255.255.255\n" + okDomain, `br.icmp-source: "255.255.255.255" is not a unicast IPv4 address`},
		{"fast-path", "br:\n  fast-path: maybe\n" + okDomain, `f.yaml:2: br.fast-path: "maybe": want on or off`},
		{"traffic-class", "br:\n  traffic-class: zero\n" + okDomain, `f.yaml:2: br.traffic-class: "zero": want copy or an octet 0-255 (decimal or 0x hex)`},
		{"tos", "br:\n  tos: 256\n" + okDomain, `f.yaml:2: br.tos: "256": want copy or an octet 0-255 (decimal or 0x hex)`},
		{"icmp-rate zero", "br:\n  icmp-rate: 0\n" + okDomain, `f.yaml:2: br.icmp-rate: "0": want errors per second and CPU (1-1000000) or off`},
		{"icmp-rate word", "br:\n  icmp-rate: fast\n" + okDomain, `br.icmp-rate: "fast": want errors per second and CPU (1-1000000) or off`},
		{"lowest-ipv6-mtu", "br:\n  lowest-ipv6-mtu: 1279\n" + okDomain, `f.yaml:2: br.lowest-ipv6-mtu: 1279 is below the IPv6 minimum MTU 1280`},
		{"source-check", "br:\n  source-check: strict\n" + okDomain, `f.yaml:2: br.source-check: "strict": want neighbor or off`},
		{"fmr not bool", okDomain + "        fmr: maybe\n", `f.yaml:9: domains[0].rules[0].fmr: "maybe" is not true or false`},
		{"rules not a list", "domains:\n  - name: a\n    dmr: 64:ff9b::/96\n    rules: 3\n", "f.yaml:4: domains[0].rules: want a non-empty list"},
		{"anycast table", "br:\n  anycast:\n    table: 254\n" + okDomain, `f.yaml:3: br.anycast.table: "254": want a routing table number`},
		{"anycast no table", "br:\n  anycast:\n    drain: 1s\n" + okDomain, `f.yaml:3: br.anycast.table: missing`},
		{"anycast drain", "br:\n  anycast:\n    table: 100\n    drain: forever\n" + okDomain, `f.yaml:4: br.anycast.drain: "forever": want a duration`},
		{"anycast require-routes", "br:\n  anycast:\n    table: 100\n    require-routes:\n      - ff02::1\n" + okDomain, `f.yaml:5: br.anycast.require-routes[0]: "ff02::1" is not a unicast`},
		{"anycast table too big", "br:\n  anycast:\n    table: 4294967295\n" + okDomain, `f.yaml:3: br.anycast.table: "4294967295": want`},
		{"anycast interval", "br:\n  anycast:\n    table: 100\n    check-interval: 1ms\n" + okDomain, `f.yaml:4: br.anycast.check-interval: "1ms": want a duration in 10ms-10s`},
		{"kea lifetime", okDomain + keaSection("valid-lifetime: 10y"), `f.yaml:11: domains[0].kea.valid-lifetime: "10y": want seconds`},
		{"kea lifetime zero", okDomain + keaSection("renew-timer: 0"), `f.yaml:11: domains[0].kea.renew-timer: "0": want seconds`},
		{"kea lifetime order", okDomain + keaSection("preferred-lifetime: 2h\n      valid-lifetime: 1h"), `f.yaml:11: domains[0].kea.preferred-lifetime: 7200 s is longer than valid-lifetime 3600 s`},
		{"kea timers order", okDomain + keaSection("renew-timer: 2000\n      rebind-timer: 1000"), `f.yaml:11: domains[0].kea.renew-timer: 2000 s is longer than rebind-timer 1000 s`},
		{"kea dns", okDomain + keaSection("dns-servers:\n        - 192.0.2.53"), `f.yaml:12: domains[0].kea.dns-servers[0]: "192.0.2.53" is not a unicast IPv6 address`},
		{"kea dns not a list", okDomain + keaSection("dns-servers: 2001:db8::53"), `f.yaml:11: domains[0].kea.dns-servers: want a list`},
		{"kea search", okDomain + keaSection("domain-search:\n        - bad_name.example"), `f.yaml:12: domains[0].kea.domain-search[0]: "bad_name.example" is not a domain name`},
		{"kea ntp", okDomain + keaSection("ntp-servers:\n        - 192.0.2.123"), `domains[0].kea.ntp-servers[0]: "192.0.2.123" is not an IPv6 address`},
		{"kea interface", okDomain + keaSection("interface: eth0/192.0.2.1"), `f.yaml:11: domains[0].kea.interface: "eth0/192.0.2.1": want NAME or NAME/IPV6-ADDRESS`},
		{"kea relay", okDomain + keaSection("relay:\n        - fe80::1%eth0"), `f.yaml:12: domains[0].kea.relay[0]: "fe80::1%eth0" is not a unicast IPv6 address`},
		{"kea server-duid type", okDomain + keaSection("server-duid: 00:04:01:02:03:04"), `f.yaml:11: domains[0].kea.server-duid: DUID type 4: Kea configures`},
		{"kea server-duid short", okDomain + keaSection("server-duid: 00:02:00:00:7e"), `domains[0].kea.server-duid: DUID type 2 needs at least 7 bytes`},
		{"kea server-duid hex", okDomain + keaSection("server-duid: zz:02"), `domains[0].kea.server-duid: "zz:02" is not a DUID`},
		{"kea priority unknown", okDomain + keaSection("s46-priority:\n        - lw4o6"), `f.yaml:12: domains[0].kea.s46-priority[0]: "lw4o6": want mapt, mape or dslite`},
		{"kea priority not offered", okDomain + keaSection("s46-priority:\n        - mapt\n        - dslite"), `f.yaml:13: domains[0].kea.s46-priority[1]: dslite is listed but not offered (set dslite-aftr)`},
		{"kea priority missing", okDomain + keaSection("mape-br: 2001:db8::1\n      s46-priority:\n        - mapt"), `domains[0].kea.s46-priority: mape is offered but not listed`},
		{"kea reservation outside", okDomain + keaSection("reservations:\n        - duid: 00:03:00:01:02:00:00:00:01:1b\n          prefix: 2001:db8:cf::/64"), `f.yaml:12: domains[0].kea.reservations[0].prefix: 2001:db8:cf::/64 is in none of the domain's rules`},
		{"kea reservation length", okDomain + keaSection("reservations:\n        - duid: 00:03:00:01:02:00:00:00:01:1b\n          prefix: 2001:db8:ce::/56"), `domains[0].kea.reservations[0].prefix: 2001:db8:ce::/56: rule 2001:db8:ce::/51,192.0.2.0/24,13,a=0,k=5 delegates /64 prefixes`},
		{"kea reservation twice", okDomain + keaSection("reservations:\n        - duid: 00:03:00:01:02:00:00:00:01:1b\n          prefix: 2001:db8:ce:11b::/64\n        - duid: 00:03:00:01:02:00:00:00:01:1b\n          prefix: 2001:db8:ce:774::/64"), `f.yaml:14: domains[0].kea.reservations[1].duid: already reserved in reservations[0]`},
		{"kea reservation no duid", okDomain + keaSection("reservations:\n        - prefix: 2001:db8:ce:11b::/64"), `f.yaml:12: domains[0].kea.reservations[0].duid: missing`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse = %v\nwant error containing %q", err, tc.want)
			}
		})
	}
	if _, err := Parse("f.yaml", []byte(okDomain)); err != nil {
		t.Fatalf("okDomain: %v", err)
	}
	f, err := Parse("f.yaml", []byte("br:\n  icmp-rate: off\n"+okDomain))
	if err != nil {
		t.Fatal(err)
	}
	if f.BR.ICMPRate != -1 {
		t.Fatalf("icmp-rate: off gives rate %d, want -1", f.BR.ICMPRate)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(okDomain))
	f.Add([]byte("br:\n  metrics: off\n" + okDomain))
	if isp, err := os.ReadFile("testdata/isp.yaml"); err == nil {
		f.Add(isp)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse("fuzz.yaml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "domainfile: fuzz.yaml:") {
				t.Fatalf("error without file and line: %v", err)
			}
			return
		}
		for _, d := range file.Domains {
			if err := d.Validate(); err != nil {
				t.Fatalf("accepted an invalid domain: %v", err)
			}
		}
	})
}

// TestYAMLSubset pins what the domain file's YAML reader accepts: the
// block style YAML tools write, quoting, comments, and a sequence at its
// key's indentation.
func TestYAMLSubset(t *testing.T) {
	doc := `--- # a document marker and a comment
br:
  metrics: "127.0.0.1:9000"   # quoted, with a comment after it
  ipv6-interface: 'eth#0'     # '#' inside quotes is text
domains:
- name: "seed \"one\""
  dmr: 64:ff9b::/96
  rules:
  - ipv6-prefix: 2001:db8:ce::/51
    ipv4-prefix: 192.0.2.0/24

    ea-len: 0x0d
    psid-offset: 0
    fmr: yes
...
`
	f, err := Parse("f.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	r := f.Domains[0].Rules[0]
	if f.BR.Metrics != "127.0.0.1:9000" || f.BR.IPv6Interface != "eth#0" || f.Domains[0].Name != `seed "one"` || r.EABits != 13 || !r.FMR {
		t.Fatalf("parsed %+v %+v", f.BR, f.Domains[0])
	}
	for _, tc := range []struct{ doc, want string }{
		{"domains:\n\t- name: x\n", "f.yaml:2: tab in indentation"},
		{"domains: [a, b]\n", "f.yaml:1: flow collections"},
		{"br: &anchor\n", "f.yaml:1: \"&anchor\": anchors"},
		{"br:\n  metrics: \"open\n", "f.yaml:2: unterminated"},
		{"br:\n  metrics: x\n    more: y\n", "f.yaml:3: unexpected indentation"},
		{"br:\n  - a\n  b: c\n", "f.yaml:3:"},
		{"br:\n  just text\n", "want a mapping"},
	} {
		if _, err := Parse("f.yaml", []byte(tc.doc)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want %q", tc.doc, err, tc.want)
		}
	}
}
