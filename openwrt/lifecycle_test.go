package openwrt_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The package's life on a router, played on the UCI model: install
// (90-ce-agent moves wan6 to proto mapt), a second run (nothing changes),
// removal (prerm: wan6 back to odhcp6c), an upgrade from the earlier
// package (which had disabled wan6), and a sysupgrade to an image without
// the package (99-ce-agent-fallback, carried by keep.d, puts wan6 back).

func runDefaults(t *testing.T, st uciState, root string) shellRun {
	t.Helper()
	r := runShell(t, st.texts(), []string{"IPKG_INSTROOT=" + root}, "ce-agent/files/ce-agent.uci-defaults")
	if r.err != nil {
		t.Fatalf("90-ce-agent: %v (%s)", r.err, r.stderr)
	}
	st.apply(t, r)
	return r
}

// installedRoot is the stub root with the package's files where the
// scripts look for them.
func installedRoot(t *testing.T, handler bool) string {
	t.Helper()
	files := map[string]string{"etc/uci-defaults/99-ce-agent-fallback": readFile(t, "ce-agent/files/ce-agent.fallback")}
	if handler {
		files["lib/netifd/proto/mapt.sh"] = readFile(t, "ce-agent/files/mapt.sh")
	}
	return rootWith(t, files)
}

func sameConfig(t *testing.T, what string, got *uciFile, want string) {
	t.Helper()
	if g, w := got.String(), parseUCI(t, want).String(); g != w {
		t.Errorf("%s:\n got %s\nwant %s", what, g, w)
	}
}

func TestInstallRemove(t *testing.T) {
	root := installedRoot(t, true)
	st := newUCI(t, map[string]string{"network": networkStock, "firewall": firewallStock})

	// Install.
	r := runDefaults(t, st, root)
	for k, want := range map[string]string{"proto": "mapt", "mapt_prev_proto": "dhcpv6", "device": "@wan", "reqaddress": "try"} {
		if got := st.get("network", "wan6", k); got != want {
			t.Errorf("network.wan6.%s = %q, want %q", k, got, want)
		}
	}
	if st.get("network", "wan", "proto") != "dhcp" || st.get("network", "lan", "proto") != "static" {
		t.Error("other interfaces changed")
	}
	for k, want := range map[string]string{"name": "mapt", "masq": "0", "mtu_fix": "1", "input": "REJECT", "forward": "REJECT", "device": "map-wan6"} {
		if got := st.get("firewall", "mapt", k); got != want {
			t.Errorf("firewall.mapt.%s = %q, want %q", k, got, want)
		}
	}
	if st.get("firewall", "mapt_lan", "src") != "lan" || st.get("firewall", "mapt_lan", "dest") != "mapt" {
		t.Error("no forwarding lan -> mapt")
	}
	if logs := r.logs(); len(logs) != 1 || !strings.Contains(logs[0], "network.wan6: proto dhcpv6 -> mapt") {
		t.Errorf("logs %q", logs)
	}
	installed := st.texts()

	// Again (a reinstall, an upgrade of the package): nothing changes.
	r = runDefaults(t, st, root)
	if calls := r.named("uci"); len(calls) != 0 || len(r.named("uci-batch")) != 0 {
		t.Errorf("second run changed %q %q", calls, r.named("uci-batch"))
	}
	if !reflect.DeepEqual(st.texts(), installed) {
		t.Error("second run changed the configuration")
	}

	// While the handler is there, the sysupgrade fallback stays and does
	// nothing (uci-defaults keeps a script that fails).
	r = runShell(t, st.texts(), []string{"IPKG_INSTROOT=" + root}, filepath.Join(root, "etc/uci-defaults/99-ce-agent-fallback"))
	if r.err == nil || len(r.named("uci")) != 0 {
		t.Errorf("fallback with the handler installed: err %v, uci %q; want exit 1 and no change", r.err, r.named("uci"))
	}

	// Removal: prerm puts wan6 back to odhcp6c and the firewall as it was.
	r = runShell(t, st.texts(), []string{"IPKG_INSTROOT=" + root}, "ce-agent/files/ce-agent.uninstall")
	if r.err != nil {
		t.Fatalf("uninstall: %v %s", r.err, r.stderr)
	}
	st.apply(t, r)
	sameConfig(t, "network after removal", st["network"], networkStock)
	sameConfig(t, "firewall after removal", st["firewall"], firewallStock)
}

// TestSysupgradeWithoutPackage: the configuration survives a sysupgrade,
// the package does not. At the first boot the fallback (kept by keep.d)
// finds no handler for proto mapt and puts wan6 back, once.
func TestSysupgradeWithoutPackage(t *testing.T) {
	st := newUCI(t, map[string]string{"network": networkStock, "firewall": firewallStock})
	runDefaults(t, st, installedRoot(t, true))
	keep := readFile(t, "ce-agent/files/ce-agent.keep")
	if !strings.Contains(keep, "\n/etc/uci-defaults/99-ce-agent-fallback\n") {
		t.Fatalf("keep.d does not carry the fallback:\n%s", keep)
	}
	upgraded := installedRoot(t, false) // the new image: the fallback from the backup, no handler
	r := runShell(t, st.texts(), []string{"IPKG_INSTROOT=" + upgraded}, filepath.Join(upgraded, "etc/uci-defaults/99-ce-agent-fallback"))
	if r.err != nil {
		t.Fatalf("fallback without the handler: %v (%s); uci-defaults would keep running it", r.err, r.stderr)
	}
	st.apply(t, r)
	sameConfig(t, "network after the sysupgrade", st["network"], networkStock)
	if logs := r.logs(); len(logs) != 1 || !strings.Contains(logs[0], "restored the DHCPv6 client (odhcp6c) on: wan6") {
		t.Errorf("logs %q", logs)
	}
	// Once done, a second boot finds nothing to do.
	r = runShell(t, st.texts(), []string{"IPKG_INSTROOT=" + upgraded}, filepath.Join(upgraded, "etc/uci-defaults/99-ce-agent-fallback"))
	if r.err != nil || len(r.named("uci")) != 0 {
		t.Errorf("second run: %v %q", r.err, r.named("uci"))
	}
}

func TestDefaultsCases(t *testing.T) {
	root := installedRoot(t, true)
	tests := []struct {
		name     string
		uci      map[string]string
		switched string // the interface moved to mapt, "" = none
		check    func(t *testing.T, st uciState)
	}{{
		name: "upgrade from the earlier package: wan6 enabled again, then switched",
		uci: map[string]string{"network": networkStock + "\toption disabled '1'\n", "firewall": firewallStock,
			"ce-agent": "config agent 'main'\n\tlist disabled_ifaces 'wan6'\n"},
		switched: "wan6",
		check: func(t *testing.T, st uciState) {
			if st.get("network", "wan6", "disabled") != "" || st.get("ce-agent", "main", "disabled_ifaces") != "" {
				t.Errorf("wan6 disabled %q, record %q", st.get("network", "wan6", "disabled"), st.get("ce-agent", "main", "disabled_ifaces"))
			}
		},
	}, {
		name: "DSA port and an older ifname config",
		uci: map[string]string{"network": "config interface 'wan'\n\toption ifname 'wan'\n\toption proto 'dhcp'\n" +
			"config interface 'wan6'\n\toption ifname 'wan'\n\toption proto 'dhcpv6'\n", "firewall": firewallStock},
		switched: "wan6",
	}, {
		name: "a second dhcpv6 interface elsewhere is left alone",
		uci: map[string]string{"network": networkStock + "\nconfig interface 'lte6'\n\toption device 'wwan0'\n\toption proto 'dhcpv6'\n",
			"firewall": firewallStock},
		switched: "wan6",
		check: func(t *testing.T, st uciState) {
			if st.get("network", "lte6", "proto") != "dhcpv6" {
				t.Error("lte6 changed")
			}
		},
	}, {
		name:     "no wan interface, one dhcpv6 interface",
		uci:      map[string]string{"network": "config interface 'up6'\n\toption device 'eth0'\n\toption proto 'dhcpv6'\n", "firewall": firewallStock},
		switched: "up6",
	}, {
		name: "no wan interface, two dhcpv6 interfaces: none guessed",
		uci: map[string]string{"network": "config interface 'a6'\n\toption device 'eth0'\n\toption proto 'dhcpv6'\n" +
			"config interface 'b6'\n\toption device 'eth2'\n\toption proto 'dhcpv6'\n", "firewall": firewallStock},
	}, {
		name: "already proto mapt by hand",
		uci: map[string]string{"network": strings.Replace(networkStock, "option proto 'dhcpv6'", "option proto 'mapt'", 1) +
			"\nconfig interface 'other6'\n\toption device '@wan'\n\toption proto 'dhcpv6'\n", "firewall": firewallStock},
		check: func(t *testing.T, st uciState) {
			if st.get("network", "other6", "proto") != "dhcpv6" || st.get("firewall", "mapt", "device") != "map-wan6" {
				t.Errorf("other6 %q, zone device %q", st.get("network", "other6", "proto"), st.get("firewall", "mapt", "device"))
			}
		},
	}, {
		name:     "zone exists already: kept as the user made it",
		uci:      map[string]string{"network": networkStock, "firewall": firewallStock + "\nconfig zone 'mine'\n\toption name 'mapt'\n\toption masq '0'\n"},
		switched: "wan6",
		check: func(t *testing.T, st uciState) {
			if st.get("firewall", "mapt", "name") != "" {
				t.Error("a second zone mapt was added")
			}
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := newUCI(t, tc.uci)
			before := st.texts()["network"]
			runDefaults(t, st, root)
			var switched []string
			for _, s := range st["network"].Sections {
				if len(s.Options["mapt_prev_proto"]) > 0 {
					switched = append(switched, s.Name)
				}
			}
			var want []string
			if tc.switched != "" {
				want = []string{tc.switched}
				if got := st.get("network", tc.switched, "proto"); got != "mapt" {
					t.Errorf("%s proto %q", tc.switched, got)
				}
			}
			if !reflect.DeepEqual(switched, want) {
				t.Errorf("switched %q, want %q", switched, want)
			}
			if tc.switched == "" && tc.check == nil && st.texts()["network"] != before {
				t.Errorf("network changed:\n%s", st.texts()["network"])
			}
			if tc.check != nil {
				tc.check(t, st)
			}
		})
	}
}

// TestUninstallRestoresOnlyItsOwn: an interface the user set to proto mapt
// by hand (no mapt_prev_proto) is not turned into something else on
// removal.
func TestUninstallRestoresOnlyItsOwn(t *testing.T) {
	root := installedRoot(t, true)
	network := "config interface 'mine'\n\toption device 'eth9'\n\toption proto 'mapt'\n"
	st := newUCI(t, map[string]string{"network": network, "firewall": firewallStock})
	r := runShell(t, st.texts(), []string{"IPKG_INSTROOT=" + root}, "ce-agent/files/ce-agent.uninstall")
	if r.err != nil {
		t.Fatal(r.err, r.stderr)
	}
	st.apply(t, r)
	sameConfig(t, "network", st["network"], network)
	if _, err := os.Stat(filepath.Join(root, "etc/uci-defaults/99-ce-agent-fallback")); err != nil {
		t.Fatal(err)
	}
}
