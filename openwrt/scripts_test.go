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

const (
	// networkStock is OpenWrt's default network config (24.10): odhcp6c
	// on wan6, on the device of wan.
	networkStock = `
config interface 'loopback'
	option device 'lo'
	option proto 'static'

config globals 'globals'
	option ula_prefix 'fd12:3456:789a::/48'

config interface 'lan'
	option device 'br-lan'
	option proto 'static'
	option ipaddr '192.168.1.1'
	option netmask '255.255.255.0'
	option ip6assign '60'

config interface 'wan'
	option device 'eth1'
	option proto 'dhcp'

config interface 'wan6'
	option device '@wan'
	option proto 'dhcpv6'
	option reqaddress 'try'
	option reqprefix 'auto'
`
	// firewallStock is fw4's default zones.
	firewallStock = `
config zone
	option name 'lan'
	list network 'lan'

config zone
	option name 'wan'
	list network 'wan'
	list network 'wan6'
	option masq '1'
`
)

// TestShellcheck runs shellcheck on every shell script of the package, on
// the test stubs and on scripts/cross.sh.
func TestShellcheck(t *testing.T) {
	testenv.Require(t, "shellcheck")
	scripts := []string{"../scripts/cross.sh", "testdata/root/netifd-handler.sh",
		"testdata/root/lib/functions.sh", "testdata/root/lib/netifd/netifd-proto.sh",
		"testdata/root/usr/share/libubox/jshn.sh", "release.sh", "mkpkg.sh"}
	for _, glob := range []string{"ce-agent/files/*", "testdata/root/bin/*"} {
		m, err := filepath.Glob(glob)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range m {
			if !strings.HasSuffix(f, ".keep") {
				scripts = append(scripts, f)
			}
		}
	}
	if len(scripts) < 15 {
		t.Fatalf("found only %d scripts: %q", len(scripts), scripts)
	}
	for _, s := range scripts {
		out, err := exec.Command("shellcheck", "-x", s).CombinedOutput()
		if err != nil {
			t.Errorf("shellcheck %s: %v\n%s", s, err, out)
		}
	}
}

// TestProtoInitConfig checks what the handler declares to netifd: the
// options it reads and its flags (no device of netifd's: the agent follows
// the WAN device itself; a renew handler).
func TestProtoInitConfig(t *testing.T) {
	r := runHandler(t, nil, nil, nil, "proto_mapt_init_config")
	if r.err != nil {
		t.Fatalf("%v: %s", r.err, r.stderr)
	}
	declared := map[string]string{}
	for _, c := range r.calls {
		if strings.HasPrefix(c.name, "proto_config_add_") && len(c.args) > 0 {
			name, _, _ := strings.Cut(c.args[0], ":")
			declared[name] = strings.TrimPrefix(c.name, "proto_config_add_")
		}
	}
	for opt, kind := range map[string]string{
		"device": "string", "tunlink": "string", "reqopts": "string", "clientid": "string", "vendorclass": "string",
		"userclass": "string", "norelease": "boolean", "mtu": "int", "lowest_ipv6_mtu": "int", "icmp_rate": "string", "traffic_class": "string", "tos": "string",
		"zone": "string", "rule": "array",
		"dmr": "string", "prefix": "string", "domainfile": "string", "iface4": "string", "uplink": "string", "log_level": "string",
		"_parent": "string", "ipaddr": "string",
	} {
		if declared[opt] != kind {
			t.Errorf("option %s declared as %q, want %s", opt, declared[opt], kind)
		}
	}
	if len(r.named("proto_config_add_defaults")) != 1 {
		t.Error("defaultroute/peerdns/metric not declared")
	}
	if got := r.named("flags"); !reflect.DeepEqual(got, [][]string{{"no_device=1", "available=1", "renew_handler=1"}}) {
		t.Errorf("flags %q", got)
	}
}

// setupCase is one configuration of a proto mapt interface and what the
// handler must make of it.
type setupCase struct {
	name    string
	cfg     map[string]string
	network string
	argv    []string // after /usr/bin/ce-agent run
	exports []string
	errors  []string // proto_notify_error codes; then no command
}

func TestProtoSetup(t *testing.T) {
	base := []string{"run", "--wan", "eth1", "--uplink", "map-wan6", "--state-dir", "/var/lib/ce-agent/wan6",
		"--status-socket", "/var/run/ce-agent-wan6.sock", "--hook", "/lib/netifd/mapt.script", "--log-level", "info",
		"--log-time=false", "--no-default-route", "--iaid", "1", "--inbound", "uplink"}
	with := func(extra ...string) []string { return append(append([]string(nil), base...), extra...) }
	exports := []string{"INTERFACE=wan6", "MAPT_IFACE4=wan6_4", "MAPT_ZONE=mapt"}
	withGlobalDUID := strings.Replace(networkStock, "option ula_prefix", "option dhcp_default_duid '00030001020000000111'\n\toption ula_prefix", 1)
	tests := []setupCase{{
		name: "stock wan6 switched to mapt: zero-touch", cfg: map[string]string{"device": "@wan"},
		argv: with("--release-on-stop"), exports: exports,
	}, {
		name: "device by name, every DHCPv6 option", network: withGlobalDUID,
		cfg: map[string]string{"device": "eth1", "clientid": "000300010200000001aa", "vendorclass": "0000a0a0ce", "userclass": "openwrt",
			"reqopts": "17 64", "norelease": "1", "mtu": "1400", "log_level": "debug", "defaultroute": "0", "metric": "20"},
		argv: []string{"run", "--wan", "eth1", "--uplink", "map-wan6", "--state-dir", "/var/lib/ce-agent/wan6",
			"--status-socket", "/var/run/ce-agent-wan6.sock", "--hook", "/lib/netifd/mapt.script", "--log-level", "debug",
			"--log-time=false", "--no-default-route", "--iaid", "1", "--inbound", "uplink", "--client-id", "000300010200000001aa", "--vendor-class", "0000a0a0ce",
			"--user-class", "openwrt", "--reqopt", "17", "--reqopt", "64", "--uplink-mtu", "1400"},
		exports: append(append([]string(nil), exports...), "MAPT_DEFAULTROUTE=0", "MAPT_METRIC=20"),
	}, {
		name: "network-wide DUID, as odhcp6c takes it", network: withGlobalDUID, cfg: map[string]string{"device": "@wan"},
		argv: with("--release-on-stop", "--client-id", "00030001020000000111"), exports: exports,
	}, {
		name: "tunlink, mtu, lowest IPv6 MTU, ICMP rate and DS field", cfg: map[string]string{"tunlink": "wan", "mtu": "1452", "lowest_ipv6_mtu": "1500", "icmp_rate": "off",
			"traffic_class": "0", "tos": "0xb8"},
		argv: with("--release-on-stop", "--uplink-mtu", "1452", "--lowest-ipv6-mtu", "1500", "--icmp-rate", "off", "--traffic-class", "0", "--tos", "0xb8"), exports: exports,
	}, {
		name: "static rules, fixed prefix, own uplink, zone and IPv4 interface name",
		cfg: map[string]string{"device": "eth1", "rule": "2001:db8:ce::/51,192.0.2.0/24,13,a=0 2001:db8:cf::/48,198.51.100.0/24,16,fmr",
			"dmr": "64:ff9b::/96", "prefix": "2001:db8:ce:774::/64", "uplink": "mapt0", "zone": "wan4", "iface4": "ipv4"},
		argv: []string{"run", "--wan", "eth1", "--uplink", "mapt0", "--state-dir", "/var/lib/ce-agent/wan6",
			"--status-socket", "/var/run/ce-agent-wan6.sock", "--hook", "/lib/netifd/mapt.script", "--log-level", "info",
			"--log-time=false", "--no-default-route", "--iaid", "1", "--inbound", "uplink", "--release-on-stop",
			"--rule", "2001:db8:ce::/51,192.0.2.0/24,13,a=0", "--rule", "2001:db8:cf::/48,198.51.100.0/24,16,fmr",
			"--dmr", "64:ff9b::/96", "--prefix", "2001:db8:ce:774::/64"},
		exports: []string{"INTERFACE=wan6", "MAPT_IFACE4=ipv4", "MAPT_ZONE=wan4"},
	}, {
		name: "domain file", cfg: map[string]string{"device": "eth1", "domainfile": "/etc/ce-agent/domain.yaml"},
		argv: with("--release-on-stop", "--domain", "/etc/ce-agent/domain.yaml"), exports: exports,
	}, {
		name: "no WAN device", network: strings.Replace(networkStock, "option device 'eth1'", "option proto_x 'x'", 1),
		cfg: map[string]string{"device": "@wan"}, errors: []string{"NO_WAN_DEVICE"},
	}, {
		name: "rules without dmr", cfg: map[string]string{"device": "eth1", "rule": "2001:db8:ce::/51,192.0.2.0/24,13"},
		errors: []string{"MISSING_DMR"},
	}, {
		name: "rules and domain file", cfg: map[string]string{"device": "eth1", "rule": "2001:db8:ce::/51,192.0.2.0/24,13",
			"dmr": "64:ff9b::/96", "domainfile": "/etc/d.yaml"}, errors: []string{"RULE_AND_DOMAINFILE"},
	}, {
		name: "prefix without rules", cfg: map[string]string{"device": "eth1", "prefix": "2001:db8:ce:774::/64"},
		errors: []string{"PREFIX_WITHOUT_RULE"},
	}, {
		name: "bad log level", cfg: map[string]string{"device": "eth1", "log_level": "loud"}, errors: []string{"INVALID_LOG_LEVEL"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			network := tc.network
			if network == "" {
				network = networkStock
			}
			r := runHandler(t, map[string]string{"network": network}, tc.cfg, []string{"MAPT_SYSCTL=" + t.TempDir()}, "proto_mapt_setup", "wan6")
			cmds := r.named("proto_run_command")
			var errs []string
			for _, e := range r.named("proto_notify_error") {
				errs = append(errs, e[1])
			}
			if !reflect.DeepEqual(errs, tc.errors) {
				t.Fatalf("errors %q, want %q (%v %s)", errs, tc.errors, r.err, r.stderr)
			}
			if tc.errors != nil {
				if len(cmds) != 0 || len(r.named("proto_block_restart")) != 1 {
					t.Errorf("on error: commands %q, restarts blocked %d; want none and 1", cmds, len(r.named("proto_block_restart")))
				}
				return
			}
			if r.err != nil {
				t.Fatalf("%v: %s", r.err, r.stderr)
			}
			if len(cmds) != 1 || cmds[0][0] != "wan6" || cmds[0][1] != "/usr/bin/ce-agent" {
				t.Fatalf("proto_run_command %q", cmds)
			}
			if got := cmds[0][2:]; !reflect.DeepEqual(got, tc.argv) {
				t.Errorf("argv\n got %q\nwant %q", got, tc.argv)
			}
			var ex []string
			for _, e := range r.named("proto_export") {
				ex = append(ex, e...)
			}
			if !reflect.DeepEqual(ex, tc.exports) {
				t.Errorf("exports %q, want %q", ex, tc.exports)
			}
		})
	}
}

// TestProtoSetupAcceptRA: with odhcp6c gone the kernel takes the WAN's
// default route from router advertisements, which with forwarding on
// needs accept_ra 2; teardown puts the old value back.
func TestProtoSetupAcceptRA(t *testing.T) {
	sysctl, run := t.TempDir(), t.TempDir()
	ra := filepath.Join(sysctl, "eth1", "accept_ra")
	if err := os.MkdirAll(filepath.Dir(ra), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(ra, []byte("1\n"), 0o644)
	env := []string{"MAPT_RUN_DIR=" + run, "MAPT_SYSCTL=" + sysctl}
	uci := map[string]string{"network": networkStock}
	r := runHandler(t, uci, map[string]string{"device": "@wan"}, env, "proto_mapt_setup", "wan6")
	if r.err != nil {
		t.Fatal(r.err, r.stderr)
	}
	if got := readFile(t, ra); got != "2\n" {
		t.Errorf("accept_ra after setup %q, want 2", got)
	}
	r = runHandler(t, uci, map[string]string{"device": "@wan"}, env, "proto_mapt_teardown", "wan6")
	if r.err != nil {
		t.Fatal(r.err, r.stderr)
	}
	if got := readFile(t, ra); got != "1\n" {
		t.Errorf("accept_ra after teardown %q, want the old 1", got)
	}
	if got := r.named("proto_kill_command"); !reflect.DeepEqual(got, [][]string{{"wan6"}}) {
		t.Errorf("teardown: kill %q, want SIGTERM to the agent", got)
	}
	if got := r.named("ubus"); !reflect.DeepEqual(got, [][]string{{"call", "network.interface.wan6_4", "remove"}}) {
		t.Errorf("teardown: ubus %q, want the IPv4 interface removed", got)
	}
	r = runHandler(t, uci, map[string]string{"device": "@wan"}, env, "proto_mapt_renew", "wan6")
	if got := r.named("proto_kill_command"); !reflect.DeepEqual(got, [][]string{{"wan6", "10"}}) {
		t.Errorf("renew: kill %q, want SIGUSR1 (10)", got)
	}
}

// bindingEnv is what ce-agent gives its hook for CE 774 of the seed.
func bindingEnv(event string) []string {
	return []string{"INTERFACE=wan6", "MAPT_IFACE4=wan6_4", "MAPT_ZONE=mapt", "MAPT_EVENT=" + event, "MAPT_WAN=eth1", "MAPT_UPLINK=map-wan6",
		"MAPT_PREFIX=2001:db8:ce:774::/64", "MAPT_PREFIX_PREFERRED=2990", "MAPT_PREFIX_VALID=3990",
		"MAPT_DNS=2001:db8:6::53 2001:db8:6::54", "MAPT_DNS_SEARCH=isp.example lab.isp.example", "MAPT_NTP=2001:db8:6::123 ntp.isp.example",
		"MAPT_SOFTWIRE=map-t", "MAPT_S46_PRIORITY=MAP-E (94),MAP-T (95)", "MAPT_SERVER=fe80::1",
		"MAPT_BMR=2001:db8:ce::/51,192.0.2.0/24,13,a=0,k=5", "MAPT_IPV4=192.0.2.59/32", "MAPT_IPV4_ADDRESS=192.0.2.59",
		"MAPT_PSID=20", "MAPT_PSID_LEN=5", "MAPT_PSID_OFFSET=0", "MAPT_PORTS=40960-43007", "MAPT_PORT_COUNT=2048",
		"MAPT_MAP_ADDRESS=2001:db8:ce:774:0:c000:23b:14", "MAPT_DMR=64:ff9b::/96", "MAPT_FMRS=", "MAPT_DOMAIN=seed", "MAPT_UPLINK_MTU=1472"}
}

// TestNotifyScript runs mapt.script through a lease's life and checks
// what netifd is told: the prefix with its lifetimes, DNS, search list,
// NTP in data, the IPv4 interface created with the binding, and all of it
// withdrawn at the end.
func TestNotifyScript(t *testing.T) {
	sysctl := t.TempDir()
	notify := func(t *testing.T, event string, env []string) shellRun {
		t.Helper()
		r := runShell(t, nil, append(env, "MAPT_SYSCTL="+sysctl), "ce-agent/files/mapt.script", event)
		if r.err != nil {
			t.Fatalf("%s: %v %s", event, r.err, r.stderr)
		}
		return r
	}
	t.Run("bound", func(t *testing.T) {
		r := notify(t, "bound", bindingEnv("bound"))
		want := []call{
			{"proto_init_update", []string{"eth1", "1", "1"}},
			{"proto_add_ipv6_prefix", []string{"2001:db8:ce:774::/64,2990,3990"}},
			{"proto_add_dns_server", []string{"2001:db8:6::53"}},
			{"proto_add_dns_server", []string{"2001:db8:6::54"}},
			{"proto_add_dns_search", []string{"isp.example"}},
			{"proto_add_dns_search", []string{"lab.isp.example"}},
			{"proto_add_data", []string{}},
		}
		if len(r.calls) < len(want)+3 || !reflect.DeepEqual(r.calls[:len(want)], want) {
			t.Fatalf("calls\n got %q\nwant %q...", r.calls, want)
		}
		var data struct {
			NTP  []string       `json:"ntpserver"`
			MAPT map[string]any `json:"mapt"`
		}
		closeData := r.calls[len(want)]
		if closeData.name != "proto_close_data" || json.Unmarshal([]byte(closeData.args[0]), &data) != nil {
			t.Fatalf("data %q", closeData)
		}
		if !reflect.DeepEqual(data.NTP, []string{"2001:db8:6::123", "ntp.isp.example"}) || data.MAPT["softwire"] != "map-t" ||
			data.MAPT["ipv4"] != "192.0.2.59/32" || data.MAPT["interface4"] != "wan6_4" || data.MAPT["uplink_mtu"] != 1472.0 {
			t.Errorf("data %s", closeData.args[0])
		}
		if c := r.calls[len(want)+1]; c.name != "proto_send_update" || c.args[0] != "wan6" {
			t.Errorf("then %q, want proto_send_update wan6", c)
		}
		ubus := r.named("ubus")
		if len(ubus) != 1 || ubus[0][0] != "call" || ubus[0][1] != "network" || ubus[0][2] != "add_dynamic" {
			t.Fatalf("ubus %q, want add_dynamic", ubus)
		}
		var dyn map[string]any
		if err := json.Unmarshal([]byte(ubus[0][3]), &dyn); err != nil {
			t.Fatalf("add_dynamic %q: %v", ubus[0][3], err)
		}
		for k, v := range map[string]any{"name": "wan6_4", "proto": "mapt", "_parent": "wan6", "uplink": "map-wan6", "ipaddr": "192.0.2.59",
			"zone": "mapt", "psid": 20.0, "ports": "40960-43007", "map_address": "2001:db8:ce:774:0:c000:23b:14", "dmr6": "64:ff9b::/96"} {
			if dyn[k] != v {
				t.Errorf("add_dynamic %s = %v, want %v (%s)", k, dyn[k], v, ubus[0][3])
			}
		}
	})
	t.Run("renewed: same again, fresh lifetimes", func(t *testing.T) {
		env := bindingEnv("renewed")
		env = append(env, "MAPT_PREFIX_PREFERRED=3000", "MAPT_PREFIX_VALID=4000")
		r := notify(t, "renewed", env)
		if got := r.named("proto_add_ipv6_prefix"); !reflect.DeepEqual(got, [][]string{{"2001:db8:ce:774::/64,3000,4000"}}) {
			t.Errorf("prefix %q", got)
		}
	})
	t.Run("lease without MAP-T: IPv6 only", func(t *testing.T) {
		env := []string{"INTERFACE=wan6", "MAPT_WAN=eth1", "MAPT_UPLINK=map-wan6", "MAPT_PREFIX=2001:db8:ce:774::/64",
			"MAPT_PREFIX_PREFERRED=10", "MAPT_PREFIX_VALID=20", "MAPT_DNS=2001:db8:6::53"}
		r := notify(t, "bound", env)
		if got := r.named("proto_add_ipv6_prefix"); !reflect.DeepEqual(got, [][]string{{"2001:db8:ce:774::/64,10,20"}}) {
			t.Errorf("prefix %q", got)
		}
		if got := r.named("ubus"); !reflect.DeepEqual(got, [][]string{{"call", "network.interface.wan6_4", "remove"}}) {
			t.Errorf("ubus %q, want the IPv4 interface removed", got)
		}
	})
	t.Run("end-user prefix longer than /64", func(t *testing.T) {
		env := append(bindingEnv("changed"), "MAPT_PREFIX=2001:db8:ce:774:8000::/65")
		r := notify(t, "changed", env)
		if got := r.named("proto_add_ipv6_prefix"); len(got) != 0 {
			t.Errorf("prefix %q given to netifd, which takes /1-/64 only", got)
		}
		if len(r.logs()) != 1 || !strings.Contains(r.logs()[0], "longer than /64") {
			t.Errorf("logs %q", r.logs())
		}
	})
	for _, ev := range []string{"expired", "released", "stopped"} {
		t.Run(ev, func(t *testing.T) {
			r := notify(t, ev, []string{"INTERFACE=wan6", "MAPT_WAN=eth1", "MAPT_UPLINK=map-wan6"})
			want := []call{
				{"ubus", []string{"call", "network.interface.wan6_4", "remove"}},
				{"proto_init_update", []string{"eth1", "0"}},
				{"proto_send_update", []string{"wan6"}},
			}
			if !reflect.DeepEqual(r.calls, want) {
				t.Errorf("calls\n got %q\nwant %q", r.calls, want)
			}
		})
	}
	t.Run("not under netifd", func(t *testing.T) {
		r := runShell(t, nil, nil, "ce-agent/files/mapt.script", "bound")
		if r.err == nil || !strings.Contains(r.stderr, "run by ce-agent under netifd") {
			t.Errorf("without INTERFACE: %v %q", r.err, r.stderr)
		}
	})
}

// TestIPv4InterfaceSetup is netifd setting up the dynamic interface the
// notify script created: the address (external: the agent holds it), the
// default route netifd installs, the zone and the binding in data.
func TestIPv4InterfaceSetup(t *testing.T) {
	cfg := map[string]string{"_parent": "wan6", "uplink": "map-wan6", "ipaddr": "192.0.2.59", "zone": "mapt",
		"bmr": "2001:db8:ce::/51,192.0.2.0/24,13,a=0,k=5", "psid": "20", "psid_len": "5", "psid_offset": "0",
		"ports": "40960-43007", "port_count": "2048", "map_address": "2001:db8:ce:774:0:c000:23b:14", "dmr6": "64:ff9b::/96"}
	r := runHandler(t, nil, cfg, nil, "proto_mapt_setup", "wan6_4")
	if r.err != nil {
		t.Fatal(r.err, r.stderr)
	}
	want := []call{
		{"proto_init_update", []string{"map-wan6", "1", "1"}},
		{"proto_add_ipv4_address", []string{"192.0.2.59", "32"}},
		{"proto_add_ipv4_route", []string{"0.0.0.0", "0"}},
		{"proto_add_data", []string{}},
	}
	if len(r.calls) != len(want)+2 || !reflect.DeepEqual(r.calls[:len(want)], want) {
		t.Fatalf("calls\n got %q\nwant %q...", r.calls, want)
	}
	var data struct {
		Zone string `json:"zone"`
		MAPT struct {
			PSID  int      `json:"psid"`
			Ports []string `json:"ports"`
			IPv4  string   `json:"ipv4"`
		} `json:"mapt"`
	}
	if err := json.Unmarshal([]byte(r.calls[len(want)].args[0]), &data); err != nil || data.Zone != "mapt" || data.MAPT.PSID != 20 ||
		!reflect.DeepEqual(data.MAPT.Ports, []string{"40960-43007"}) || data.MAPT.IPv4 != "192.0.2.59" {
		t.Errorf("data %q (%v)", r.calls[len(want)].args, err)
	}
	if c := r.calls[len(want)+1]; c.name != "proto_send_update" || c.args[0] != "wan6_4" {
		t.Errorf("then %q", c)
	}
	if len(r.named("proto_run_command")) != 0 {
		t.Error("the IPv4 interface started a command: the parent's agent owns it")
	}
	// Its teardown leaves the agent's device alone.
	r = runHandler(t, nil, cfg, nil, "proto_mapt_teardown", "wan6_4")
	if r.err != nil || len(r.calls) != 0 {
		t.Errorf("IPv4 teardown: %v %q", r.err, r.calls)
	}
	// Without a binding it refuses.
	r = runHandler(t, nil, map[string]string{"_parent": "wan6"}, nil, "proto_mapt_setup", "wan6_4")
	if got := r.named("proto_notify_error"); !reflect.DeepEqual(got, [][]string{{"wan6_4", "MISSING_BINDING"}}) {
		t.Errorf("errors %q", got)
	}
}
