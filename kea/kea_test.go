package kea

import (
	"encoding/hex"
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mapt-go/mapt/domainfile"
	"github.com/mapt-go/mapt/mapt"
	"github.com/mapt-go/mapt/provision"
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
	if len(frag.PDPools) != 1 || frag.PDPools[0] != (PDPool{"2001:db8:ce::", 51, 64}) {
		t.Errorf("pd-pools = %+v", frag.PDPools)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "PSID 0 the ports 0-2047") {
		t.Errorf("warnings = %q", warnings)
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

func TestRuleFlagsAndPortParams(t *testing.T) {
	rule := func(s string) mapt.Rule {
		r, err := mapt.ParseRule(s)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	d := domainfile.Domain{Domain: mapt.Domain{Name: "x", DMR: netip.MustParsePrefix("2001:db8:ffff::/64"), Rules: []mapt.Rule{
		rule("2001:db8:100::/40,198.51.100.0/24,16,fmr"),
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
	if frag.PDPools[0] != (PDPool{"2001:db8:100::", 40, 56}) {
		t.Errorf("pool = %+v", frag.PDPools[0])
	}
	// EA = 0 with a PSID: the portparams carry it right-aligned.
	d.Rules = []mapt.Rule{rule("2001:db8:12:3400::/56,192.0.2.18/32,0,a=6,k=8,psid=0x34")}
	frag, _, err = GenerateFragment(d, Options{})
	if err != nil || frag.OptionData[2].Data != "6, 52/8" || frag.PDPools[0] != (PDPool{"2001:db8:12:3400::", 56, 56}) {
		t.Fatalf("ea 0: %+v %v", frag, err)
	}
	// Several rules, with their own port parameters: the container goes
	// out as raw bytes, which decode to the same domain.
	d.Rules = append(d.Rules, rule("2001:db8:12:3500::/56,192.0.2.18/32,0,a=6,k=8,psid=0x35"))
	frag, _, err = GenerateFragment(d, Options{})
	if err != nil || len(frag.OptionData) != 1 || frag.OptionData[0].Code != 95 || *frag.OptionData[0].CSVFormat {
		t.Fatalf("several rules: %+v %v", frag, err)
	}
	raw, err := hex.DecodeString(frag.OptionData[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	back, err := provision.ParseMAPT(raw)
	if err != nil || len(back.Rules) != 2 || back.Rules[1] != d.Rules[1] || back.DMR != d.DMR {
		t.Fatalf("raw container decodes to %+v, %v", back, err)
	}
}

func TestGenerateNeedsSubnet(t *testing.T) {
	f, d := seed(t)
	d.Kea.Subnet = netip.Prefix{}
	if _, _, err := Generate(f, d, Options{}); err == nil || !strings.Contains(err.Error(), "kea.subnet") {
		t.Fatalf("Generate = %v", err)
	}
}

// TestKeaAcceptsOutput runs Kea 2.2's own configuration check on what we
// generate, with and without the PSID 0 exclusion.
func TestKeaAcceptsOutput(t *testing.T) {
	testenv.Require(t, "kea-dhcp6")
	f, d := seed(t)
	for _, exclude := range []bool{false, true} {
		c, _, err := Generate(f, d, Options{LeaseFile: filepath.Join(t.TempDir(), "leases.csv"), ExcludePSIDZero: exclude})
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "kea.json")
		if err := os.WriteFile(path, JSON(c), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("kea-dhcp6", "-t", path).CombinedOutput()
		if err != nil {
			t.Fatalf("kea-dhcp6 -t (exclude=%v): %v\n%s", exclude, err, out)
		}
		var back Config
		if err := json.Unmarshal(JSON(c), &back); err != nil || len(back.Dhcp6.Subnet6) != 1 {
			t.Fatalf("round trip: %v", err)
		}
	}
}
