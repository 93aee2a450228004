package kea

import (
	"encoding/hex"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv6"

	"github.com/mapt-go/mapt/domainfile"
	"github.com/mapt-go/mapt/domainfile/domaintest"
	"github.com/mapt-go/mapt/mapt"
	"github.com/mapt-go/mapt/s46"
	"github.com/mapt-go/mapt/testenv"
)

func seed(t *testing.T) (*domainfile.File, domainfile.Domain) {
	t.Helper()
	f, err := domainfile.Load("../domainfile/testdata/seed.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return f, f.Domains[0]
}

func parse(t *testing.T, yaml string) (*domainfile.File, domainfile.Domain) {
	t.Helper()
	f, err := domainfile.Parse("t.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return f, f.Domains[0]
}

func TestSeedFragment(t *testing.T) {
	_, d := seed(t)
	frag, warnings, err := GenerateFragment(d, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []Option{
		{Name: "s46-cont-mapt"},
		{Space: "s46-cont-mapt-options", Name: "s46-rule", Data: "1, 13, 24, 192.0.2.0, 2001:db8:ce::/51"},
		{Space: "s46-rule-options", Name: "s46-portparams", Data: "0, 0/0"},
		{Space: "s46-cont-mapt-options", Name: "s46-dmr", Data: "64:ff9b::/96"},
	}
	if len(frag.OptionData) != len(want) {
		t.Fatalf("option-data = %+v", frag.OptionData)
	}
	for i := range want {
		if frag.OptionData[i] != want[i] {
			t.Errorf("option-data[%d] = %+v, want %+v", i, frag.OptionData[i], want[i])
		}
	}
	if len(frag.PDPools) != 1 || frag.PDPools[0].Prefix != "2001:db8:ce::" || frag.PDPools[0].PrefixLen != 51 || frag.PDPools[0].DelegatedLen != 64 {
		t.Errorf("pd-pools = %+v", frag.PDPools)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "PSID 0 the ports 0-2047") {
		t.Errorf("warnings = %q", warnings)
	}
	// Nothing of the lab's: no timers unless the file gives them.
	if frag.Lifetimes != (Lifetimes{}) || len(frag.Reservations) != 0 {
		t.Errorf("lifetimes %+v reservations %+v", frag.Lifetimes, frag.Reservations)
	}
}

// TestExcludePSIDZero checks the split pools: they hold exactly the
// delegated prefixes whose PSID is not 0.
func TestExcludePSIDZero(t *testing.T) {
	_, d := seed(t)
	frag, _, err := GenerateFragment(d, Options{ExcludePSIDZero: true})
	if err != nil {
		t.Fatal(err)
	}
	r := d.Rules[0]
	covered := map[netip.Prefix]bool{}
	for _, p := range frag.PDPools {
		pool := netip.PrefixFrom(netip.MustParseAddr(p.Prefix), p.PrefixLen)
		if pool != pool.Masked() || p.DelegatedLen != 64 || !r.IPv6Prefix.Contains(pool.Addr()) {
			t.Fatalf("bad pool %+v", p)
		}
		for i := 0; i < 1<<(p.DelegatedLen-p.PrefixLen); i++ {
			eup, err := mapt.ExtendPrefix(pool, p.DelegatedLen-p.PrefixLen, uint64(i))
			if err != nil {
				t.Fatal(err)
			}
			if covered[eup] {
				t.Fatalf("%s in two pools", eup)
			}
			covered[eup] = true
			b, err := r.Derive(eup)
			if err != nil || b.PSID() == 0 {
				t.Fatalf("pool prefix %s: psid %d %v", eup, b.PSID(), err)
			}
		}
	}
	if want := 256 * 31; len(covered) != want {
		t.Fatalf("pools hold %d prefixes, want %d", len(covered), want)
	}
}

// decode reads a raw container option back with our RFC 7598 decoder.
func decode(t *testing.T, o Option) *s46.Container {
	t.Helper()
	if o.CSVFormat == nil || *o.CSVFormat || o.Space != "dhcp6" {
		t.Fatalf("not a raw option: %+v", o)
	}
	raw, err := hex.DecodeString(o.Data)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s46.ParseContainer(dhcpv6.OptionCode(o.Code), raw)
	if err != nil {
		t.Fatalf("%s: %v", o.Name, err)
	}
	return c
}

func TestRuleFlagsAndPortParams(t *testing.T) {
	d := domainfile.Domain{Domain: mapt.Domain{Name: "x", DMR: netip.MustParsePrefix("2001:db8:ffff::/64"), Rules: []mapt.Rule{
		mapt.MustParseRule("2001:db8:100::/40,198.51.100.0/24,16,fmr"),
	}}}
	frag, warnings, err := GenerateFragment(d, Options{})
	if err != nil || len(warnings) != 0 {
		t.Fatal(err, warnings)
	}
	got := []string{}
	for _, o := range frag.OptionData {
		got = append(got, o.Data)
	}
	// F flag 1 (RFC 7598), offset always explicit.
	want := "|1, 16, 24, 198.51.100.0, 2001:db8:100::/40|6, 0/0|2001:db8:ffff::/64"
	if strings.Join(got, "|") != want {
		t.Errorf("data = %q, want %q", strings.Join(got, "|"), want)
	}
	if p := frag.PDPools[0]; p.Prefix != "2001:db8:100::" || p.PrefixLen != 40 || p.DelegatedLen != 56 {
		t.Errorf("pool = %+v", p)
	}
	// Several shared rules, with their own port parameters: the container
	// goes out as raw bytes, which decode to the same domain.
	d.Rules = append(d.Rules, mapt.MustParseRule("2001:db8:200::/40,192.0.2.0/24,16,a=4"))
	frag, _, err = GenerateFragment(d, Options{})
	if err != nil || len(frag.OptionData) != 1 || frag.OptionData[0].Code != 95 {
		t.Fatalf("several rules: %+v %v", frag, err)
	}
	c := decode(t, frag.OptionData[0])
	back, err := c.Domain()
	if err != nil || len(back.Rules) != 2 || back.Rules[1] != d.Rules[1] || back.DMR != d.DMR {
		t.Fatalf("raw container decodes to %+v, %v", back, err)
	}
}

// TestOneToOne: a 1:1 rule (EA length 0) is one CE's. Bound to a DUID it
// goes into that client's reservation, with its own container; unbound,
// into a pool of its one prefix, with the container as pool options. The
// subnet's container keeps the shared rules only (and the FMRs).
func TestOneToOne(t *testing.T) {
	_, d := parse(t, "domains:\n"+domaintest.Domain("mixed", domaintest.DMR, domaintest.SeedRuleFMR(0, true), domaintest.OneToOneRules)+`    kea:
      subnet: 2001:db8:6::/64
      reservations:
        - duid: 00:03:00:01:02:00:00:00:01:1b
          prefix: 2001:db8:12:3400::/56
        - duid: 00:03:00:01:02:00:00:00:07:74
          prefix: 2001:db8:ce:774::/64
`)
	frag, warnings, err := GenerateFragment(d, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 2 || !strings.Contains(warnings[1], "1:1 rule 2001:db8:12:3500::/56") {
		t.Errorf("warnings %q", warnings)
	}
	// The subnet: the shared rule only, readable.
	if len(frag.OptionData) != 4 || frag.OptionData[1].Data != "1, 13, 24, 192.0.2.0, 2001:db8:ce::/51" {
		t.Fatalf("subnet options %+v", frag.OptionData)
	}
	// Pools: the shared rule's, and the unbound 1:1 rule's one prefix
	// with its container.
	if len(frag.PDPools) != 2 {
		t.Fatalf("pools %+v", frag.PDPools)
	}
	p := frag.PDPools[1]
	if p.Prefix != "2001:db8:12:3500::" || p.PrefixLen != 56 || p.DelegatedLen != 56 || len(p.OptionData) != 1 {
		t.Fatalf("1:1 pool %+v", p)
	}
	dom, err := decode(t, p.OptionData[0]).Domain()
	if err != nil || len(dom.Rules) != 2 || dom.Rules[0] != d.Rules[2] || dom.Rules[1] != d.Rules[0] || dom.DMR != d.DMR {
		t.Fatalf("pool container: %+v %v", dom, err)
	}
	// The CE that gets it derives its own binding: 198.51.100.18, PSID 0x35.
	b, err := dom.Derive(netip.MustParsePrefix("2001:db8:12:3500::/56"))
	if err != nil || b.IPv4.Addr() != netip.MustParseAddr("198.51.100.18") || b.PSID() != 0x35 {
		t.Fatalf("derive: %+v %v", b, err)
	}
	// Reservations: the bound 1:1 rule with its container, and the pinned
	// shared-rule prefix without options.
	if len(frag.Reservations) != 2 {
		t.Fatalf("reservations %+v", frag.Reservations)
	}
	r := frag.Reservations[0]
	if r.DUID != "00:03:00:01:02:00:00:00:01:1b" || len(r.Prefixes) != 1 || r.Prefixes[0] != "2001:db8:12:3400::/56" || len(r.OptionData) != 1 {
		t.Fatalf("reservation %+v", r)
	}
	dom, err = decode(t, r.OptionData[0]).Domain()
	if err != nil || len(dom.Rules) != 2 || dom.Rules[0] != d.Rules[1] {
		t.Fatalf("reservation container: %+v %v", dom, err)
	}
	if r := frag.Reservations[1]; r.DUID != "00:03:00:01:02:00:00:00:07:74" || r.Prefixes[0] != "2001:db8:ce:774::/64" || len(r.OptionData) != 0 {
		t.Fatalf("pinned reservation %+v", r)
	}
}

func TestServerID(t *testing.T) {
	_, d := seed(t)
	id, err := serverID(d)
	if err != nil || id.Type != "LL" || id.HType != 1 || len(id.Identifier) != 12 {
		t.Fatalf("default %+v %v", id, err)
	}
	mac, _ := hex.DecodeString(id.Identifier)
	if mac[0]&0x03 != 0x02 {
		t.Fatalf("default DUID-LL %x: want a locally administered unicast address", mac)
	}
	if again, _ := serverID(d); again != id {
		t.Fatal("default server DUID is not stable")
	}
	for _, tc := range []struct {
		duid string
		want ServerID
	}{
		{"00:02:00:00:7e:99:01:02:03", ServerID{Type: "EN", EnterpriseID: 32409, Identifier: "010203"}},
		{"00:03:00:01:02:00:5e:10:00:01", ServerID{Type: "LL", HType: 1, Identifier: "02005e100001"}},
		{"00:01:00:01:2a:00:00:01:02:00:5e:10:00:01", ServerID{Type: "LLT", HType: 1, Time: 0x2a000001, Identifier: "02005e100001"}},
	} {
		d.Kea.ServerDUID, _ = hex.DecodeString(strings.ReplaceAll(tc.duid, ":", ""))
		if id, err := serverID(d); err != nil || id != tc.want {
			t.Errorf("%s: %+v %v, want %+v", tc.duid, id, err, tc.want)
		}
	}
}

// brEth is a br section: the CEs on eth0, the IPv4 side on eth1.
const brEth = "br:\n  ipv6-interface: eth0\n  ipv4-interface: eth1\n"

// production is a domain file with every kea setting an ISP may give.
var production = brEth + "domains:\n" + domaintest.Domain("isp", domaintest.DMR, domaintest.SeedRule(6)) + `    kea:
      subnet: 2001:db8:6::/64
      interface: eth0/2001:db8:6::53
      relay:
        - 2001:db8:6::1
        - 2001:db8:6::2
      interface-id: ge-0/0/1.100
      server-duid: 00:02:00:00:7e:99:6d:61:70:74
      valid-lifetime: 1d
      preferred-lifetime: 12h
      renew-timer: 6h
      rebind-timer: 9h
      dns-servers:
        - 2001:db8::53
        - 2001:db8::54
      domain-search:
        - isp.example
        - example.net.
      ntp-servers:
        - 2001:db8::123
        - ntp.isp.example
      mape-br: 2001:db8:ff::1
      dslite-aftr: aftr.isp.example
      s46-priority:
        - mapt
        - dslite
        - mape
`

func TestProduction(t *testing.T) {
	f, d := parse(t, production)
	c, _, err := Generate(f, d, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := c.Dhcp6.Subnet6[0]
	if c.Dhcp6.InterfacesConfig.Interfaces[0] != "eth0/2001:db8:6::53" || s.Interface != "" || s.InterfaceID != "ge-0/0/1.100" ||
		s.Relay == nil || strings.Join(s.Relay.IPAddresses, ",") != "2001:db8:6::1,2001:db8:6::2" {
		t.Fatalf("subnet selection: %+v listen %v", s, c.Dhcp6.InterfacesConfig.Interfaces)
	}
	if s.Lifetimes != (Lifetimes{RenewTimer: 6 * 3600, RebindTimer: 9 * 3600, PreferredLifetime: 12 * 3600, ValidLifetime: 86400}) {
		t.Fatalf("lifetimes %+v", s.Lifetimes)
	}
	if c.Dhcp6.ServerID != (ServerID{Type: "EN", EnterpriseID: 32409, Identifier: "6d617074"}) {
		t.Fatalf("server-id %+v", c.Dhcp6.ServerID)
	}
	opts := map[string]Option{}
	for _, o := range s.OptionData {
		opts[o.Name] = o
	}
	if opts["dns-servers"].Data != "2001:db8::53, 2001:db8::54" || opts["domain-search"].Data != "isp.example, example.net" || opts["aftr-name"].Data != "aftr.isp.example" {
		t.Fatalf("options %+v", opts)
	}
	// RFC 5908: an address sub-option, then a name in wire format.
	ntp := "0001" + "0010" + "20010db8000000000000000000000123" + "0003" + "0011" + "036e7470" + "03697370" + "076578616d706c65" + "00"
	if got := strings.ToLower(opts["ntp-server"].Data); got != ntp || opts["ntp-server"].Code != 56 {
		t.Fatalf("ntp-server %s, want %s", got, ntp)
	}
	// RFC 8026: MAP-T (95), DS-Lite (64), MAP-E (94), as listed.
	if o := opts["s46-priority"]; o.Code != 111 || o.Data != "005F0040005E" {
		t.Fatalf("s46-priority %+v", o)
	}
	mape := decode(t, opts["s46-cont-mape"])
	var br netip.Addr
	rules := 0
	for _, o := range mape.Options {
		switch o := o.(type) {
		case *s46.BROption:
			br = o.Addr
		case *s46.RuleOption:
			rules++
		}
	}
	if br != netip.MustParseAddr("2001:db8:ff::1") || rules != 1 {
		t.Fatalf("MAP-E container %s", mape)
	}
	// Without an order: MAP-T, MAP-E, DS-Lite.
	d.Kea.Priority = nil
	if got := Priority(d.Kea); len(got) != 3 || got[0] != 95 || got[1] != 94 || got[2] != 64 {
		t.Fatalf("default priority %v", got)
	}
	// Only MAP-T: no priority option at all.
	d.Kea.MAPEBR, d.Kea.DSLiteAFTR = netip.Addr{}, ""
	for _, o := range commonOptions(d.Kea) {
		if o.Code == 111 {
			t.Fatal("s46-priority with one mechanism")
		}
	}
}

func TestGenerateNeedsSubnet(t *testing.T) {
	f, d := seed(t)
	d.Kea.Subnet = netip.Prefix{}
	if _, _, err := Generate(f, d, Options{}); err == nil || !strings.Contains(err.Error(), "kea.subnet") {
		t.Fatalf("Generate = %v", err)
	}
}

// variants are domain files covering every kind of output: Kea's own
// check must accept each.
var variants = map[string]string{
	"production": production,
	"one-to-one": brEth + "domains:\n" + domaintest.Domain("one-to-one", "2001:db8:ffff::/96", domaintest.OneToOneRules, `      - ipv6-prefix: 2001:db8:12:3600::/56
        ipv4-prefix: 198.51.100.19/32
        ea-len: 0
        fmr: true
`) + `    kea:
      subnet: 2001:db8:6::/64
      server-duid: 00:03:00:01:02:00:5e:10:00:01
      valid-lifetime: 4000
      reservations:
        - duid: 00:03:00:01:02:00:00:00:01:1b
          prefix: 2001:db8:12:3400::/56
        - duid: 00:01:00:01:2a:00:00:01:02:00:00:00:07:74
          prefix: 2001:db8:12:3600::/56
`,
	"several-shared-rules-mape": "domains:\n" + domaintest.Domain("shared", domaintest.DMR, domaintest.SeedRule(0), `      - ipv6-prefix: 2001:db8:100::/40
        ipv4-prefix: 198.51.100.0/24
        ea-len: 16
        fmr: true
`) + `    kea:
      subnet: 2001:db8:6::/64
      interface: eth0
      interface-id: port7
      mape-br: 2001:db8:ff::1
      server-duid: 00:01:00:01:2a:00:00:01:02:00:5e:10:00:01
`,
}

// TestKeaAcceptsOutput runs Kea 2.2's own configuration check on what we
// generate: the seed with and without the PSID 0 exclusion, and every
// variant, whole and as a fragment merged into a subnet.
func TestKeaAcceptsOutput(t *testing.T) {
	testenv.Require(t, "kea-dhcp6")
	// Kea checks that the interfaces exist and that an address to listen
	// on for relays' unicast is assigned: give it a namespace with both.
	lab := testenv.New(t)
	ns := lab.NS("kea")
	lab.Veth(ns, "eth0", lab.NS("peer"), "eth0")
	ns.Addr("eth0", "2001:db8:6::53/64")
	check := func(name string, c *Config) {
		t.Helper()
		path := filepath.Join(t.TempDir(), "kea.json")
		if err := os.WriteFile(path, JSON(c), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := ns.Exec("kea-dhcp6", "-t", path)
		if err != nil {
			t.Fatalf("kea-dhcp6 -t (%s): %v\n%s\n%s", name, err, out, JSON(c))
		}
		var back Config
		if err := json.Unmarshal(JSON(c), &back); err != nil || len(back.Dhcp6.Subnet6) != 1 {
			t.Fatalf("round trip: %v", err)
		}
	}
	f, d := seed(t)
	for _, exclude := range []bool{false, true} {
		c, _, err := Generate(f, d, Options{LeaseFile: filepath.Join(t.TempDir(), "leases.csv"), ExcludePSIDZero: exclude})
		if err != nil {
			t.Fatal(err)
		}
		check("seed", c)
	}
	for name, yaml := range variants {
		f, d := parse(t, yaml)
		c, _, err := Generate(f, d, Options{LeaseFile: filepath.Join(t.TempDir(), "leases.csv")})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		check(name, c)
		// The fragment, merged into a subnet of the ISP's own.
		frag, _, err := GenerateFragment(d, Options{})
		if err != nil {
			t.Fatal(err)
		}
		c.Dhcp6.Subnet6[0].Fragment = *frag
		check(name+" fragment", c)
	}
}
