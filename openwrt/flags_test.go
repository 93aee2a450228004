package openwrt_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/mapt-go/mapt/testenv"
)

// TestHandlerFlagsMatchAgent holds the handler to the real agent: every
// flag proto_mapt_setup passes, with every option set, must be one
// `ce-agent run` defines, with a value where it takes one. It builds
// cmd/ce-agent and reads its `run -h` listing, so a renamed flag on
// either side fails here.
func TestHandlerFlagsMatchAgent(t *testing.T) {
	bin := testenv.BuildBinary(t, "./cmd/ce-agent")
	stdout, stderr, code := testenv.RunBinary(t, bin, "run", "-h")
	help := stdout + stderr
	if code != 0 {
		t.Fatalf("ce-agent run -h: exit %d\n%s", code, help)
	}
	// flag's listing: "  -name type" for value flags, "  -name" for bools.
	defined := map[string]bool{} // name -> takes a value
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z0-9-]+)( \S+)?$`).FindAllStringSubmatch(help, -1) {
		defined[m[1]] = m[2] != ""
	}
	if len(defined) < 15 {
		t.Fatalf("parsed only %v from ce-agent run -h:\n%s", defined, help)
	}
	configs := map[string]map[string]string{
		"dhcp, every option": {"device": "eth1", "clientid": "000300010200000001aa", "vendorclass": "0000a0a0ce",
			"userclass": "openwrt", "reqopts": "17", "mtu": "1400", "lowest_ipv6_mtu": "1500", "icmp_rate": "20", "traffic_class": "0", "tos": "copy",
			"log_level": "debug"},
		"static rules": {"device": "eth1", "rule": "2001:db8:ce::/51,192.0.2.0/24,13,a=0", "dmr": "64:ff9b::/96",
			"prefix": "2001:db8:ce:774::/64", "norelease": "1"},
		"domain file": {"device": "eth1", "domainfile": "/etc/ce-agent/domain.yaml"},
	}
	used := map[string]bool{}
	for name, cfg := range configs {
		r := runHandler(t, map[string]string{"network": networkStock}, cfg, []string{"MAPT_SYSCTL=" + t.TempDir()}, "proto_mapt_setup", "wan6")
		cmds := r.named("proto_run_command")
		if r.err != nil || len(cmds) != 1 {
			t.Fatalf("%s: setup %v, commands %q (%s)", name, r.err, cmds, r.stderr)
		}
		argv := cmds[0][1:]
		if argv[1] != "run" {
			t.Fatalf("%s: command %q is not ce-agent run", name, argv)
		}
		for i := 2; i < len(argv); i++ {
			f, ok := strings.CutPrefix(argv[i], "--")
			if !ok {
				t.Errorf("%s: %q at %d is not a flag", name, argv[i], i)
				continue
			}
			f, inline, hasInline := strings.Cut(f, "=")
			takesValue, known := defined[f]
			if !known {
				t.Errorf("%s: ce-agent run has no flag --%s", name, f)
				continue
			}
			used[f] = true
			switch {
			case hasInline && takesValue:
			case hasInline && inline != "false" && inline != "true":
				t.Errorf("%s: --%s=%s on a boolean flag", name, f, inline)
			case takesValue:
				if i+1 == len(argv) || strings.HasPrefix(argv[i+1], "--") {
					t.Errorf("%s: --%s without a value", name, f)
				}
				i++
			}
		}
	}
	for _, f := range []string{"wan", "uplink", "state-dir", "status-socket", "hook", "log-level", "log-time", "no-default-route",
		"iaid", "inbound", "release-on-stop", "client-id", "vendor-class", "user-class", "reqopt", "uplink-mtu", "lowest-ipv6-mtu",
		"icmp-rate", "traffic-class", "tos", "prefix", "rule", "dmr", "domain"} {
		if !used[f] {
			t.Errorf("--%s never passed", f)
		}
	}
}
