package openwrt_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/mapt-go/mapt/testenv"
)

// TestInitFlagsMatchAgent holds the init script to the real agent: every
// flag it passes must be one `ce-agent run` defines, value flags must get a
// value and boolean flags none. It builds cmd/ce-agent and reads its
// `run -h` listing, so a renamed flag on either side fails here.
func TestInitFlagsMatchAgent(t *testing.T) {
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
	if len(defined) < 10 {
		t.Fatalf("parsed only %v from ce-agent run -h:\n%s", defined, help)
	}

	every := `
config agent 'main'
	option enabled '1'
	option wan 'eth1'
	option uplink 'map4'
	option state_dir '/etc/ce-agent/state'
	option status_socket '/var/run/ce-agent.sock'
	option hook '/usr/libexec/ce-agent/netifd-hook'
	option log_level 'debug'
	option release_on_stop '1'
	option leave_in_place '1'
	option mode 'static'
	option prefix '2001:db8:ce:774::/64'
`
	configs := map[string]string{
		"static rules":  every + "\tlist rule '2001:db8:ce::/51,192.0.2.0/24,13,a=0'\n\toption dmr '64:ff9b::/96'\n",
		"static domain": every + "\toption domain '/etc/ce-agent/domain.yaml'\n",
	}
	used := map[string]bool{}
	for name, cfg := range configs {
		r := runInit(t, map[string]string{"ce-agent": cfg, "network": networkStock}, "start_service")
		inst := r.instances(t)
		if r.err != nil || len(inst) != 1 {
			t.Fatalf("%s: start_service %v, %d instances (logs %q)", name, r.err, len(inst), r.logs())
		}
		argv := inst[0].argv
		if len(argv) < 2 || argv[1] != "run" {
			t.Fatalf("%s: command %q is not ce-agent run", name, argv)
		}
		for i := 2; i < len(argv); i++ {
			f, ok := strings.CutPrefix(argv[i], "--")
			if !ok {
				t.Errorf("%s: %q at %d is not a flag", name, argv[i], i)
				continue
			}
			takesValue, known := defined[f]
			if !known {
				t.Errorf("%s: ce-agent run has no flag --%s", name, f)
				continue
			}
			used[f] = true
			if takesValue {
				if i+1 == len(argv) || strings.HasPrefix(argv[i+1], "--") {
					t.Errorf("%s: --%s without a value", name, f)
				}
				i++
			}
		}
	}
	// Every UCI option of the contract reached the command line.
	for _, f := range []string{"wan", "uplink", "state-dir", "status-socket", "hook", "log-level",
		"release-on-stop", "leave-in-place", "prefix", "rule", "dmr", "domain"} {
		if !used[f] {
			t.Errorf("--%s never passed", f)
		}
	}
}
