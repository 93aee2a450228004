package dataplane

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/mapt-go/mapt/mapt"
)

func TestConfigValidate(t *testing.T) {
	good := Config{Mode: CE, Binding: ceBinding, DMR: dmr, FMRs: allRules}
	if err := good.Validate(); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
	cases := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"no mode", func(c *Config) { c.Mode = 0 }, "mode"},
		{"bad dmr length", func(c *Config) { c.DMR = netip.MustParsePrefix("2001:db8::/33") }, "dmr"},
		{"no dmr", func(c *Config) { c.DMR = netip.Prefix{} }, "dmr"},
		{"ce without binding", func(c *Config) { c.Binding = mapt.Binding{} }, "binding"},
		{"bad port set", func(c *Config) { c.Binding.PortSet.Len = 12; c.Binding.PortSet.Offset = 6 }, "binding"},
		{"bad fmr", func(c *Config) { c.FMRs = []mapt.Rule{{IPv6Prefix: netip.MustParsePrefix("2001:db8::/40")}} }, "fmr"},
		{"negative capacity", func(c *Config) { c.Capacity = -1 }, "capacity"},
		{"ipv6 side mtu below 1280", func(c *Config) { c.IPv6Side.MTU = 1000 }, "ipv6 side mtu"},
		{"ipv4 side mtu below 68", func(c *Config) { c.IPv4Side.MTU = 60 }, "ipv4 side mtu"},
		{"lowest-ipv6-mtu below 1280", func(c *Config) { c.LowestIPv6MTU = 1000 }, "lowest-ipv6-mtu"},
		{"fast path on a ce", func(c *Config) { c.FastPath = true }, "fast path: BR only"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := good
			c.mod(&cfg)
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "dataplane: ") {
				t.Fatalf("error %v, want one naming %q", err, c.want)
			}
		})
	}
	br := Config{Mode: BR, DMR: dmr, FMRs: allRules}
	if err := br.Validate(); err != nil {
		t.Fatalf("br config without binding rejected: %v", err)
	}
}

func TestBuildTables(t *testing.T) {
	tabs, err := buildTables(allRules)
	if err != nil {
		t.Fatal(err)
	}
	// The two EA-0 rules go to the exact-match hashes (their /64 is probed
	// by length); they share 203.0.113.5/32: one marker, two PSID entries.
	if len(tabs.v6) != 2 || len(tabs.v6x) != 2 || len(tabs.v4) != 2 || len(tabs.v4x) != 1 || len(tabs.psid) != 2 {
		t.Fatalf("tables v6=%d v6x=%d v4=%d v4x=%d psid=%d, want 2 2 2 1 2",
			len(tabs.v6), len(tabs.v6x), len(tabs.v4), len(tabs.v4x), len(tabs.psid))
	}
	if tabs.lens != [4]uint8{64} {
		t.Errorf("exact lengths %v, want [64]", tabs.lens)
	}
	if m := tabs.v4x[0xcb007105]; m.Flags != ceRuleFlagRULE_BY_PSID || m.PsidK != 4 || m.PsidM != 6 {
		t.Errorf("shared marker %+v, want by-psid k=4 m=6", m)
	}
	ka := ceLpmV4Key{Prefixlen: 24, Addr: [4]byte{192, 0, 2, 0}}
	if r := tabs.v4[ka]; r.EaLen != 16 || r.PsidK != 8 || r.PsidA != 6 || r.PsidM != 2 || r.V6Len != 40 || r.V4 != 0xc0000200 {
		t.Errorf("rule A encoded as %+v", r)
	}
	// Five lengths of 1:1 rules: the four most common are hashed, the
	// fifth stays in the trie.
	var many []mapt.Rule
	for i, l := range []int{64, 64, 60, 60, 56, 56, 48, 48, 52} {
		many = append(many, mapt.MustParseRule(fmt.Sprintf("2001:db8:%x::/%d,10.0.0.%d/32,0", 0x100+i, l, i)))
	}
	mt, err := buildTables(many)
	if err != nil {
		t.Fatal(err)
	}
	if mt.lens != [4]uint8{64, 60, 56, 48} || len(mt.v6x) != 8 || len(mt.v6) != 1 {
		t.Errorf("lens %v v6x %d v6 %d, want [64 60 56 48] 8 1", mt.lens, len(mt.v6x), len(mt.v6))
	}
	dup := []mapt.Rule{ruleA, mapt.MustParseRule("2001:db8:1000::/40,192.0.2.0/24,16,a=6")}
	if _, err := buildTables(dup); err == nil || !strings.Contains(err.Error(), "ipv4-prefix") {
		t.Errorf("duplicate ipv4 prefix: error %v", err)
	}
	dup6 := []mapt.Rule{ruleA, mapt.MustParseRule("2001:db8::/40,10.0.0.0/24,16,a=6")}
	if _, err := buildTables(dup6); err == nil || !strings.Contains(err.Error(), "ipv6-prefix") {
		t.Errorf("duplicate ipv6 prefix: error %v", err)
	}
}

func TestPrefixMask(t *testing.T) {
	cases := []struct {
		bits   int
		hi, lo uint64
	}{
		{0, 0, 0},
		{1, 1 << 63, 0},
		{64, ^uint64(0), 0},
		{65, ^uint64(0), 1 << 63},
		{128, ^uint64(0), ^uint64(0)},
	}
	for _, c := range cases {
		hi, lo := prefixMask(c.bits)
		if hi != c.hi || lo != c.lo {
			t.Errorf("prefixMask(%d) = %#x %#x, want %#x %#x", c.bits, hi, lo, c.hi, c.lo)
		}
	}
}
