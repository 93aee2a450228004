package openwrt_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mapt-go/mapt/testenv"
)

// TestShellcheck runs shellcheck on every shell script of the package, on
// the test stubs and on scripts/cross.sh.
func TestShellcheck(t *testing.T) {
	testenv.Require(t, "shellcheck")
	scripts := []string{"../scripts/cross.sh", "testdata/root/rc.common",
		"testdata/root/lib/functions.sh", "testdata/root/lib/functions/procd.sh"}
	for _, glob := range []string{"ce-agent/files/*", "testdata/root/bin/*"} {
		m, err := filepath.Glob(glob)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range m {
			if !strings.HasSuffix(f, ".config") {
				scripts = append(scripts, f)
			}
		}
	}
	if len(scripts) < 12 {
		t.Fatalf("found only %d scripts: %q", len(scripts), scripts)
	}
	for _, s := range scripts {
		out, err := exec.Command("shellcheck", "-x", s).CombinedOutput()
		if err != nil {
			t.Errorf("shellcheck %s: %v\n%s", s, err, out)
		}
	}
}

func TestUCIDefaults(t *testing.T) {
	shipped := readFile(t, "ce-agent/files/ce-agent.config")
	zone := []string{
		"set firewall.mapt=zone",
		"set firewall.mapt.name='mapt'",
		"add_list firewall.mapt.device='mapt0'",
		"set firewall.mapt.input='REJECT'",
		"set firewall.mapt.output='ACCEPT'",
		"set firewall.mapt.forward='REJECT'",
		"set firewall.mapt.masq='0'",
		"set firewall.mapt.mtu_fix='1'",
		"set firewall.mapt_lan=forwarding",
		"set firewall.mapt_lan.src='lan'",
		"set firewall.mapt_lan.dest='mapt'",
		"commit firewall",
	}
	const fwStock = `
config zone
	option name 'lan'
	list network 'lan'

config zone
	option name 'wan'
	list network 'wan'
	list network 'wan6'
	option masq '1'
`
	const fwDone = fwStock + `
config zone 'mapt'
	option name 'mapt'
	list device 'mapt0'
	option masq '0'
`
	const networkAlias = `
config interface 'wan'
	option device 'wan'
	option proto 'dhcp'

config interface 'wan6'
	option device '@wan'
	option proto 'dhcpv6'
`
	tests := []struct {
		name    string
		uci     map[string]string
		batch   []string   // uci batch commands
		uciArgs [][]string // other uci invocations
		sysctl  string     // the sysctl.d file written, "" = none
	}{{
		name:  "fresh install: zone, wan6 off, its device as the WAN",
		uci:   map[string]string{"ce-agent": shipped, "firewall": fwStock, "network": networkStock},
		batch: zone,
		uciArgs: [][]string{{"-q", "set", "network.wan6.disabled=1"},
			{"-q", "add_list", "ce-agent.main.disabled_ifaces=wan6"},
			{"-q", "set", "ce-agent.main.wan=eth1"},
			{"-q", "commit", "network"}, {"-q", "commit", "ce-agent"}},
		sysctl: "net.ipv6.conf.eth1.accept_ra = 2\n",
	}, {
		name: "wan6 on '@wan' (DSA port 'wan'), WAN already chosen by the user",
		uci: map[string]string{"ce-agent": shipped + "\toption wan 'wan'\n", "firewall": fwStock,
			"network": networkAlias},
		batch: zone,
		uciArgs: [][]string{{"-q", "set", "network.wan6.disabled=1"},
			{"-q", "add_list", "ce-agent.main.disabled_ifaces=wan6"},
			{"-q", "commit", "network"}, {"-q", "commit", "ce-agent"}},
		sysctl: "net.ipv6.conf.wan.accept_ra = 2\n",
	}, {
		name: "wan6 on '@wan' resolves to the device of wan",
		uci:  map[string]string{"ce-agent": shipped + "\tlist disabled_ifaces 'wan6'\n", "firewall": fwStock + "config zone\n\toption name 'mapt'\n", "network": networkAlias},
		uciArgs: [][]string{{"-q", "set", "network.wan6.disabled=1"},
			{"-q", "set", "ce-agent.main.wan=wan"},
			{"-q", "commit", "network"}, {"-q", "commit", "ce-agent"}},
		sysctl: "net.ipv6.conf.wan.accept_ra = 2\n",
	}, {
		name: "second run changes nothing",
		uci: map[string]string{"ce-agent": shipped + "\tlist disabled_ifaces 'wan6'\n",
			"firewall": fwDone, "network": networkTakenOver},
	}, {
		name: "static mode keeps odhcp6c; other uplink name",
		uci: map[string]string{"ce-agent": "config agent 'main'\n\toption mode 'static'\n\toption uplink 'map4'\n",
			"firewall": fwStock, "network": networkStock},
		batch: append(append(append([]string(nil), zone[:2]...), "add_list firewall.mapt.device='map4'"), zone[3:]...),
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sysctlDir := filepath.Join(t.TempDir(), "sysctl.d")
			r := runShell(t, tc.uci, []string{"CE_AGENT_SYSCTL_DIR=" + sysctlDir}, "ce-agent/files/ce-agent.uci-defaults")
			if r.err != nil {
				t.Fatalf("uci-defaults: %v (%s)", r.err, r.stderr)
			}
			var batch []string
			for _, b := range r.named("uci-batch") {
				batch = append(batch, strings.Join(b, "\t"))
			}
			if !reflect.DeepEqual(batch, tc.batch) {
				t.Errorf("uci batch\n got %q\nwant %q", batch, tc.batch)
			}
			var other [][]string
			for _, a := range r.named("uci") {
				if !reflect.DeepEqual(a, []string{"-q", "batch"}) {
					other = append(other, a)
				}
			}
			if !reflect.DeepEqual(other, tc.uciArgs) {
				t.Errorf("uci calls\n got %q\nwant %q", other, tc.uciArgs)
			}
			got, err := os.ReadFile(filepath.Join(sysctlDir, "90-ce-agent.conf"))
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			if string(got) != tc.sysctl {
				t.Errorf("sysctl.d file %q, want %q", got, tc.sysctl)
			}
		})
	}
}

func TestUninstall(t *testing.T) {
	sysctlDir := t.TempDir()
	conf := filepath.Join(sysctlDir, "90-ce-agent.conf")
	if err := os.WriteFile(conf, []byte("net.ipv6.conf.eth1.accept_ra = 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runShell(t, map[string]string{"ce-agent": "config agent 'main'\n\tlist disabled_ifaces 'wan6'\n\tlist disabled_ifaces 'wanb6'\n"},
		[]string{"CE_AGENT_SYSCTL_DIR=" + sysctlDir}, "ce-agent/files/ce-agent.uninstall")
	if r.err != nil {
		t.Fatalf("uninstall: %v (%s)", r.err, r.stderr)
	}
	if _, err := os.Stat(conf); !os.IsNotExist(err) {
		t.Errorf("sysctl file still there (stat: %v)", err)
	}
	want := [][]string{
		{"-q", "delete", "network.wan6.disabled"}, {"-q", "delete", "network.wanb6.disabled"},
		{"-q", "delete", "ce-agent.main.disabled_ifaces"},
		{"-q", "delete", "firewall.mapt_lan"}, {"-q", "delete", "firewall.mapt"},
		{"-q", "commit", "network"}, {"-q", "commit", "firewall"}, {"-q", "commit", "ce-agent"},
	}
	if got := r.named("uci"); !reflect.DeepEqual(got, want) {
		t.Errorf("uci calls\n got %q\nwant %q", got, want)
	}
}

// TestNetifdHook runs the default hook through a lease's life and checks
// what it tells netifd (ubus) and the kernel (sysctl).
func TestNetifdHook(t *testing.T) {
	state := filepath.Join(t.TempDir(), "run", "netifd-prefix")
	binding := func(prefix string) []string {
		return []string{"MAPT_HOOK_STATE=" + state, "MAPT_WAN=eth1", "MAPT_PREFIX=" + prefix,
			"MAPT_IPV4=192.0.2.59/32", "MAPT_PSID=20", "MAPT_MAP_ADDRESS=2001:db8:ce:774:0:c000:23b:14"}
	}
	type dyn struct {
		Name      string   `json:"name"`
		Proto     string   `json:"proto"`
		Device    string   `json:"device"`
		IP6Prefix []string `json:"ip6prefix"`
	}
	add := func(prefix string) []string {
		b, _ := json.Marshal(dyn{"mapt6", "static", "eth1", []string{prefix}})
		return []string{"call", "network", "add_dynamic", string(b)}
	}
	remove := []string{"call", "network.interface.mapt6", "remove"}
	withdrawn := []string{"MAPT_HOOK_STATE=" + state, "MAPT_WAN=eth1"}
	steps := []struct {
		event string
		env   []string
		fails bool
		ubus  [][]string
		state string // state file contents after the step, "" = absent
	}{
		{"bound", binding("2001:db8:ce:774::/64"), false, [][]string{add("2001:db8:ce:774::/64")}, "2001:db8:ce:774::/64 eth1\n"},
		// A renewal with the same prefix must not flap the LAN.
		{"renewed", binding("2001:db8:ce:774::/64"), false, nil, "2001:db8:ce:774::/64 eth1\n"},
		{"changed", binding("2001:db8:ce:11b::/64"), false, [][]string{remove, add("2001:db8:ce:11b::/64")}, "2001:db8:ce:11b::/64 eth1\n"},
		{"expired", withdrawn, false, [][]string{remove}, ""},
		{"bound", binding("2001:db8:ce:11b::/64"), false, [][]string{add("2001:db8:ce:11b::/64")}, "2001:db8:ce:11b::/64 eth1\n"},
		{"stopped", withdrawn, false, [][]string{remove}, ""},
		{"released", withdrawn, false, nil, ""},
		{"bound", binding("2001:db8:ce:774::/64"), false, [][]string{add("2001:db8:ce:774::/64")}, "2001:db8:ce:774::/64 eth1\n"},
		// netifd takes no prefix longer than /64: withdraw, do not publish.
		{"changed", binding("2001:db8:ce:774:8000::/65"), false, [][]string{remove}, ""},
		{"bound", []string{"MAPT_HOOK_STATE=" + state, "MAPT_PREFIX=2001:db8:ce:774::/64"}, true, nil, ""},
	}
	for i, s := range steps {
		r := runShell(t, nil, s.env, "ce-agent/files/ce-agent.hook", s.event)
		if (r.err != nil) != s.fails {
			t.Errorf("step %d (%s): error %v, want failure %v (%s)", i, s.event, r.err, s.fails, r.stderr)
		}
		if got := r.named("ubus"); !reflect.DeepEqual(got, s.ubus) {
			t.Errorf("step %d (%s): ubus\n got %q\nwant %q", i, s.event, got, s.ubus)
		}
		sysctl := r.named("sysctl")
		if len(s.env) < len(binding("")) || s.fails {
			if len(sysctl) != 0 {
				t.Errorf("step %d (%s): sysctl %q, want none", i, s.event, sysctl)
			}
		} else if want := [][]string{{"-q", "-w", "net.ipv6.conf.eth1.accept_ra=2"}}; !reflect.DeepEqual(sysctl, want) {
			t.Errorf("step %d (%s): sysctl %q, want %q", i, s.event, sysctl, want)
		}
		got, err := os.ReadFile(state)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if string(got) != s.state {
			t.Errorf("step %d (%s): state file %q, want %q", i, s.event, got, s.state)
		}
	}
}
