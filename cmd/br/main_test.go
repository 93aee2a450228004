package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/mapt-go/mapt/internal/mapcli"
	"github.com/mapt-go/mapt/testenv"
)

const ex1 = "2001:db8::/40,192.0.2.0/24,16"

// TestLookupBinary runs the built br on RFC 7597/7599 Appendix A and the
// seed.
func TestLookupBinary(t *testing.T) {
	bin := testenv.BuildBinary(t, "./cmd/br")
	run := func(args ...string) string {
		t.Helper()
		stdout, stderr, code := testenv.RunBinary(t, bin, append([]string{"lookup", "--json"}, args...)...)
		if code != 0 {
			t.Fatalf("br lookup %v: exit %d: %s", args, code, stderr)
		}
		return stdout
	}
	// RFC 7599 A example 2: 192.0.2.18:1232 belongs to PSID 0x34.
	var v4 mapcli.LookupIPv4JSON
	if err := json.Unmarshal([]byte(run("--rule", ex1, "192.0.2.18:1232")), &v4); err != nil {
		t.Fatal(err)
	}
	if v4.MAPAddress != "2001:db8:12:3400:0:c000:212:34" || v4.PSID != 0x34 || v4.EndUserPrefix != "2001:db8:12:3400::/56" {
		t.Fatalf("ex2: %+v", v4)
	}
	// And back, with the port set.
	var v6 mapcli.LookupIPv6JSON
	if err := json.Unmarshal([]byte(run("--rule", ex1, "2001:db8:12:3400:0:c000:212:34")), &v6); err != nil {
		t.Fatal(err)
	}
	if v6.IPv4 != "192.0.2.18" || v6.PSID != 0x34 || len(v6.Ports) != 63 || v6.Ports[0] != [2]uint16{1232, 1235} || v6.Ports[62] != [2]uint16{64720, 64723} {
		t.Fatalf("reverse: %+v", v6)
	}
	// The seed: CE 774 owns 192.0.2.59:40960-43007.
	for _, port := range []string{"40960", "43007"} {
		if err := json.Unmarshal([]byte(run("--rule", "2001:db8:ce::/51,192.0.2.0/24,13,a=0", "192.0.2.59:"+port)), &v4); err != nil {
			t.Fatal(err)
		}
		if v4.MAPAddress != "2001:db8:ce:774:0:c000:23b:14" || v4.PSID != 20 {
			t.Fatalf("seed 774 port %s: %+v", port, v4)
		}
	}
	// Flags after the address work too; a bare address without sharing.
	if err := json.Unmarshal([]byte(run("192.0.2.1", "--rule", "2001:db8:12:3400::/56,192.0.2.1/32,0")), &v4); err != nil {
		t.Fatal(err)
	}
	if v4.MAPAddress != "2001:db8:12:3400:0:c000:201:0" {
		t.Fatalf("ex4: %+v", v4)
	}
}

func TestLookupBadInput(t *testing.T) {
	bin := testenv.BuildBinary(t, "./cmd/br")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"lookup", "--rule", ex1, "192.0.2.18"}, "shared by 256 CEs"},
		{[]string{"lookup", "--rule", ex1, "192.0.2.18:70000"}, `port "70000"`},
		{[]string{"lookup", "--rule", ex1, "198.51.100.1:80"}, "no matching rule"},
		{[]string{"lookup", "--rule", ex1, "192.0.2.18:80"}, "no matching rule"}, // A = 0
		{[]string{"lookup", "--rule", ex1, "2001:db9::1"}, "no matching rule"},
		{[]string{"lookup", "--rule", ex1}, "exactly one ADDRESS"},
		{[]string{"lookup", "--rule", ex1, "bogus"}, `"bogus"`},
		{[]string{"lookup", "192.0.2.18:1232"}, "at least one --rule"},
	}
	for _, tc := range tests {
		testenv.RunUsageError(t, bin, tc.want, tc.args...)
	}
}

// TestDomainFileCommands runs br check, br lookup --config and
// br kea-config on the built binary.
func TestDomainFileCommands(t *testing.T) {
	bin := testenv.BuildBinary(t, "./cmd/br")
	const seed = "../../domainfile/testdata/seed.yaml"
	stdout, stderr, code := testenv.RunBinary(t, bin, "check", "--config", seed)
	if code != 0 || !strings.Contains(stdout, "seed.yaml: ok") {
		t.Fatalf("check: %d %q %q", code, stdout, stderr)
	}
	stdout, stderr, code = testenv.RunBinary(t, bin, "lookup", "--config", seed, "--json", "192.0.2.59:41000")
	var v4 mapcli.LookupIPv4JSON
	if code != 0 || json.Unmarshal([]byte(stdout), &v4) != nil || v4.MAPAddress != "2001:db8:ce:774:0:c000:23b:14" {
		t.Fatalf("lookup --config: %d %q %q", code, stdout, stderr)
	}
	stdout, stderr, code = testenv.RunBinary(t, bin, "kea-config", "--config", seed)
	if code != 0 || !strings.Contains(stdout, `"data": "1, 13, 24, 192.0.2.0, 2001:db8:ce::/51"`) || !strings.Contains(stderr, "warning: ") {
		t.Fatalf("kea-config: %d %q %q", code, stdout, stderr)
	}
	// An ISP's file: anycast, reservations, every kea setting.
	const isp = "../../domainfile/testdata/isp.yaml"
	stdout, stderr, code = testenv.RunBinary(t, bin, "check", "--config", isp)
	if code != 0 || !strings.Contains(stdout, "domain isp: 2 kea reservations") ||
		!strings.Contains(stdout, "anycast: table 9724, drain 1.5s, checked every 100ms, healthy only with routes to [2001:db8:ce::1 203.0.113.56]") {
		t.Fatalf("check isp: %d %q %q", code, stdout, stderr)
	}
	stdout, stderr, code = testenv.RunBinary(t, bin, "kea-config", "--config", isp)
	var conf struct {
		Dhcp6 struct {
			ServerID struct {
				Type         string `json:"type"`
				EnterpriseID int    `json:"enterprise-id"`
			} `json:"server-id"`
			Subnet6 []struct {
				InterfaceID  string `json:"interface-id"`
				ValidLife    int    `json:"valid-lifetime"`
				Reservations []any  `json:"reservations"`
			} `json:"subnet6"`
		}
	}
	if code != 0 || json.Unmarshal([]byte(stdout), &conf) != nil || conf.Dhcp6.ServerID.EnterpriseID != 32409 ||
		conf.Dhcp6.Subnet6[0].InterfaceID != "ge-0/0/1.100" || conf.Dhcp6.Subnet6[0].ValidLife != 86400 || len(conf.Dhcp6.Subnet6[0].Reservations) != 2 {
		t.Fatalf("kea-config isp: %d %+v %q", code, conf, stderr)
	}
	// A broken file: one line naming file, line and field; exit 2.
	bad := t.TempDir() + "/bad.yaml"
	os.WriteFile(bad, []byte("domains:\n  - name: x\n    dmr: 64:ff9b::/96\n    rules:\n      - ipv6-prefix: 2001:db8::/40\n        ipv4-prefix: 192.0.2.0/24\n        ea-len: 16\n        psid-offset: 9\n"), 0o644)
	for _, args := range [][]string{{"check", "--config", bad}, {"kea-config", "--config", bad}, {"lookup", "--config", bad, "192.0.2.1:80"}} {
		testenv.RunUsageError(t, bin, "bad.yaml:8: domains[0].rules[0].psid-offset: ", args...)
	}
}
