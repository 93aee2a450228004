package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mapt-go/mapt/internal/mapcli"
	"github.com/mapt-go/mapt/testenv"
)

// TestDeriveBinary runs the built ce-agent on the RFC 7597 Appendix A
// examples and the seed's CEs and compares with golden output.
func TestDeriveBinary(t *testing.T) {
	bin := testenv.BuildBinary(t, "./cmd/ce-agent")
	tests := []struct {
		name   string
		args   []string
		golden string
	}{
		{"rfc7597-ex1", []string{"--rule", "2001:db8::/40,192.0.2.0/24,16", "--prefix", "2001:db8:12:3400::/56", "--json"}, "rfc7597-ex1.json"},
		{"rfc7597-ex4", []string{"--rule", "2001:db8:12:3400::/56,192.0.2.1/32,0", "--prefix", "2001:db8:12:3400::/56", "--json"}, "rfc7597-ex4.json"},
		{"rfc7597-ex5", []string{"--rule", "2001:db8:12:3400::/56,192.0.2.18/32,0,a=6,k=8,psid=0x34", "--prefix", "2001:db8:12:3400::/56", "--json"}, "rfc7597-ex5.json"},
		{"seed-11b", []string{"--rule", "2001:db8:ce::/51,192.0.2.0/24,13,a=0", "--prefix", "2001:db8:ce:11b::/64", "--dmr", "64:ff9b::/96", "--json"}, "seed-11b.json"},
		{"seed-774", []string{"--rule", "2001:db8:ce::/51,192.0.2.0/24,13,a=0", "--prefix", "2001:db8:ce:774::/64", "--dmr", "64:ff9b::/96", "--json"}, "seed-774.json"},
		{"seed-774-text", []string{"--rule", "2001:db8:ce::/51,192.0.2.0/24,13,a=0", "--prefix", "2001:db8:ce:774::/64", "--dmr", "64:ff9b::/96"}, "seed-774.txt"},
		{"longest-match", []string{"--rule", "2001:db8::/32,198.51.100.0/24,16", "--rule", "2001:db8:ce::/51,192.0.2.0/24,13,a=0", "--prefix", "2001:db8:ce:774::/64", "--json"}, "longest-match.json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := testenv.RunBinary(t, bin, append([]string{"derive"}, tc.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			golden := filepath.Join("testdata", tc.golden)
			if os.Getenv("UPDATE_GOLDEN") == "1" {
				os.WriteFile(golden, []byte(stdout), 0o644)
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if stdout != string(want) {
				t.Fatalf("output differs from %s:\n%s\nwant:\n%s", golden, stdout, want)
			}
		})
	}
	// The seed's CE 774 gets 40960-43007, not the tutorial's 28672-30719.
	stdout, _, _ := testenv.RunBinary(t, bin, "derive", "--rule", "2001:db8:ce::/51,192.0.2.0/24,13,a=0", "--prefix", "2001:db8:ce:774::/64", "--json")
	var d mapcli.DeriveJSON
	if err := json.Unmarshal([]byte(stdout), &d); err != nil {
		t.Fatal(err)
	}
	if d.IPv4 != "192.0.2.59/32" || d.PSID != 20 || len(d.Ports) != 1 || d.Ports[0] != [2]uint16{40960, 43007} || d.PortCount != 2048 {
		t.Fatalf("CE 774: %+v", d)
	}
}

func TestBadInputBinary(t *testing.T) {
	bin := testenv.BuildBinary(t, "./cmd/ce-agent")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"derive", "--rule", "2001:db8::/40,192.0.2.0/24,16,a=11", "--prefix", "2001:db8:12:3400::/56"}, "psid-offset 11 + psid-len 8 > 16"},
		{[]string{"derive", "--rule", "2001:db8::/40,192.0.2.0/24,16", "--prefix", "2001:db8:12::/48"}, "shorter than rule prefix /40 + 16 EA bits"},
		{[]string{"derive", "--rule", "2001:db8::/40,192.0.2.0/24,16", "--prefix", "2001:db9::/56"}, "no matching rule"},
		{[]string{"derive", "--rule", "2001:db8::/40,192.0.2.0/24,16", "--prefix", "nonsense"}, `--prefix "nonsense"`},
		{[]string{"derive", "--rule", "2001:db8::/40,192.0.2.0/24,16", "--prefix", "2001:db8:12:3400::/56", "--dmr", "64:ff9b::/80"}, "dmr 64:ff9b::/80"},
		{[]string{"derive", "--prefix", "2001:db8:12:3400::/56"}, "at least one --rule"},
		{[]string{"derive", "--rule", "2001:db8::/40,192.0.2.0/24"}, "want IPV6PREFIX,IPV4PREFIX,EA"},
		{[]string{"frobnicate"}, "unknown command"},
		{[]string{"run", "--traffic-class", "zero"}, `--traffic-class "zero": want copy or an octet 0-255`},
		{[]string{"run", "--tos", "256"}, `--tos "256": want copy or an octet 0-255`},
	}
	for _, tc := range tests {
		testenv.RunUsageError(t, bin, tc.want, tc.args...)
	}
	stdout, _, code := testenv.RunBinary(t, bin, "version")
	if code != 0 || !strings.HasPrefix(stdout, "ce-agent ") {
		t.Errorf("version: %d %q", code, stdout)
	}
}

func TestParseICMPRate(t *testing.T) {
	for in, want := range map[string]int{"off": -1, "1": 1, "100": 100, "1000000": 1000000} {
		if got, err := parseICMPRate(in); err != nil || got != want {
			t.Errorf("parseICMPRate(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"0", "-5", "fast", "1000001", ""} {
		if _, err := parseICMPRate(in); err == nil || !strings.Contains(err.Error(), "--icmp-rate") {
			t.Errorf("parseICMPRate(%q) = %v, want an error naming the flag", in, err)
		}
	}
}
