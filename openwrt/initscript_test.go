package openwrt_test

import (
	"reflect"
	"strings"
	"testing"
)

const (
	// networkStock is OpenWrt's default network config: odhcp6c on wan6.
	networkStock = `
config interface 'loopback'
	option device 'lo'
	option proto 'static'

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
	option device 'eth1'
	option proto 'dhcpv6'
`
	// networkTakenOver is networkStock after the uci-defaults script.
	networkTakenOver = networkStock + `	option disabled '1'
`
)

func TestInitScriptFlags(t *testing.T) {
	shipped := readFile(t, "ce-agent/files/ce-agent.config")
	base := []string{"/usr/bin/ce-agent", "run", "--state-dir", "/var/lib/ce-agent", "--uplink", "mapt0", "--log-level", "info"}
	withArgs := func(extra ...string) []string { return append(append([]string(nil), base...), extra...) }

	tests := []struct {
		name    string
		config  string // /etc/config/ce-agent
		network string // /etc/config/network
		argv    []string
		file    []string // procd "file" parameter
	}{{
		name:    "shipped config: zero-touch dhcp with the netifd hook",
		config:  shipped,
		network: networkTakenOver,
		argv:    withArgs("--status-socket", "/var/run/ce-agent.sock", "--hook", "/usr/libexec/ce-agent/netifd-hook"),
	}, {
		name: "empty section: every default",
		config: `
config agent 'main'
	option enabled '1'
`,
		network: networkTakenOver,
		argv:    base,
	}, {
		name: "static rules, dmr, prefix and wan",
		config: `
config agent 'main'
	option enabled '1'
	option mode 'static'
	option wan 'eth1'
	list rule '2001:db8:ce::/51,192.0.2.0/24,13,a=0'
	list rule '2001:db8:cf::/48,198.51.100.0/24,16,a=6,fmr'
	option dmr '64:ff9b::/96'
	option prefix '2001:db8:ce:774::/64'
`,
		// Static mode does not care about odhcp6c: it runs no DHCPv6 client
		// when the prefix is given.
		network: networkStock,
		argv: withArgs("--wan", "eth1",
			"--rule", "2001:db8:ce::/51,192.0.2.0/24,13,a=0",
			"--rule", "2001:db8:cf::/48,198.51.100.0/24,16,a=6,fmr",
			"--dmr", "64:ff9b::/96", "--prefix", "2001:db8:ce:774::/64"),
	}, {
		name: "static domain file, prefix from DHCPv6",
		config: `
config agent 'main'
	option enabled '1'
	option mode 'static'
	option domain '/etc/ce-agent/domain.yaml'
	option dmr '64:ff9b::/96'
`,
		// The dmr is in the domain file; the option is ignored.
		network: networkTakenOver,
		argv:    withArgs("--domain", "/etc/ce-agent/domain.yaml"),
		file:    []string{"/etc/ce-agent/domain.yaml"},
	}, {
		name: "hook, log level, release on stop, leave in place, socket, uplink, state dir",
		config: `
config agent 'main'
	option enabled 'yes'
	option uplink 'map4'
	option state_dir '/etc/ce-agent/state'
	option status_socket '/var/run/ce.sock'
	option hook '/etc/ce-agent/hook.sh'
	option log_level 'debug'
	option release_on_stop '1'
	option leave_in_place 'on'
`,
		network: networkTakenOver,
		argv: []string{"/usr/bin/ce-agent", "run", "--state-dir", "/etc/ce-agent/state", "--uplink", "map4",
			"--log-level", "debug", "--status-socket", "/var/run/ce.sock", "--hook", "/etc/ce-agent/hook.sh",
			"--release-on-stop", "--leave-in-place"},
	}, {
		name: "booleans off are left out",
		config: `
config agent 'main'
	option enabled '1'
	option release_on_stop '0'
	option leave_in_place 'no'
	option log_level 'warn'
`,
		network: networkTakenOver,
		argv:    []string{"/usr/bin/ce-agent", "run", "--state-dir", "/var/lib/ce-agent", "--uplink", "mapt0", "--log-level", "warn"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runInit(t, map[string]string{"ce-agent": tc.config, "network": tc.network}, "start_service")
			if r.err != nil {
				t.Fatalf("start_service: %v (stderr %q, logs %q)", r.err, r.stderr, r.logs())
			}
			if r.stderr != "" {
				t.Errorf("stderr: %q", r.stderr)
			}
			inst := r.instances(t)
			if len(inst) != 1 {
				t.Fatalf("got %d instances, want 1 (calls %v)", len(inst), r.calls)
			}
			if !reflect.DeepEqual(inst[0].argv, tc.argv) {
				t.Errorf("command line\n got %q\nwant %q", inst[0].argv, tc.argv)
			}
			// procd must respawn the agent, give it time to clean up after
			// SIGTERM and send its output to logread.
			for p, want := range map[string][]string{
				"respawn": {"3600", "5", "5"}, "term_timeout": {"15"},
				"stdout": {"1"}, "stderr": {"1"}, "file": tc.file,
			} {
				if got := inst[0].params[p]; !reflect.DeepEqual(got, want) {
					t.Errorf("procd param %s = %q, want %q", p, got, want)
				}
			}
		})
	}
}

func TestInitScriptRefuses(t *testing.T) {
	tests := []struct {
		name    string
		config  string
		network string
		fails   bool   // start_service returns non-zero
		log     string // substring of the one log line
	}{{
		name:    "disabled: no instance, not an error",
		config:  "config agent 'main'\n\toption enabled '0'\n",
		network: networkTakenOver,
		log:     "info disabled in /etc/config/ce-agent",
	}, {
		name:    "no section at all is disabled",
		config:  "",
		network: networkTakenOver,
		log:     "info disabled",
	}, {
		name:    "dhcp mode next to an enabled odhcp6c: never two DHCPv6 clients",
		config:  "config agent 'main'\n\toption enabled '1'\n",
		network: networkStock,
		fails:   true,
		log:     "err interface 'wan6' runs odhcp6c (proto dhcpv6)",
	}, {
		name:    "static without a prefix is a DHCPv6 client too",
		config:  "config agent 'main'\n\toption enabled '1'\n\toption mode 'static'\n\toption domain '/etc/ce-agent/d.yaml'\n",
		network: networkStock,
		fails:   true,
		log:     "err interface 'wan6' runs odhcp6c (proto dhcpv6)",
	}, {
		name:    "static with rules and a domain",
		config:  "config agent 'main'\n\toption enabled '1'\n\toption mode 'static'\n\toption domain '/etc/ce-agent/d.yaml'\n\tlist rule '2001:db8:ce::/51,192.0.2.0/24,13,a=0'\n\toption dmr '64:ff9b::/96'\n",
		network: networkTakenOver,
		fails:   true,
		log:     "err mode static takes 'list rule' or 'option domain', not both",
	}, {
		name:    "static without rules or domain",
		config:  "config agent 'main'\n\toption enabled '1'\n\toption mode 'static'\n\toption prefix '2001:db8::/56'\n",
		network: networkStock,
		fails:   true,
		log:     "err mode static needs 'list rule' or 'option domain'",
	}, {
		name:    "static rules without dmr",
		config:  "config agent 'main'\n\toption enabled '1'\n\toption mode 'static'\n\tlist rule '2001:db8:ce::/51,192.0.2.0/24,13,a=0'\n",
		network: networkStock,
		fails:   true,
		log:     "err mode static with 'list rule' needs 'option dmr'",
	}, {
		name:    "unknown mode",
		config:  "config agent 'main'\n\toption enabled '1'\n\toption mode 'pppoe'\n",
		network: networkTakenOver,
		fails:   true,
		log:     "err mode 'pppoe' is not dhcp or static",
	}, {
		name:    "unknown log level",
		config:  "config agent 'main'\n\toption enabled '1'\n\toption log_level 'trace'\n",
		network: networkTakenOver,
		fails:   true,
		log:     "err log_level 'trace' is not one of debug, info, warn, error",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runInit(t, map[string]string{"ce-agent": tc.config, "network": tc.network}, "start_service")
			if (r.err != nil) != tc.fails {
				t.Errorf("start_service error = %v, want failure %v (stderr %q)", r.err, tc.fails, r.stderr)
			}
			if inst := r.instances(t); len(inst) != 0 {
				t.Errorf("got instances %+v, want none", inst)
			}
			logs := r.logs()
			if len(logs) != 1 || !strings.Contains(logs[0], tc.log) {
				t.Errorf("logs %q, want one line containing %q", logs, tc.log)
			}
		})
	}
}

func TestInitScriptTriggers(t *testing.T) {
	r := runInit(t, map[string]string{"ce-agent": readFile(t, "ce-agent/files/ce-agent.config")}, "service_triggers")
	if r.err != nil {
		t.Fatalf("service_triggers: %v (%s)", r.err, r.stderr)
	}
	// A uci commit of either config reloads the service: ours for the flags,
	// network because the odhcp6c check reads it.
	want := [][]string{{"ce-agent", "network"}}
	if got := r.named("reload_trigger"); !reflect.DeepEqual(got, want) {
		t.Errorf("reload triggers %q, want %q", got, want)
	}
}
