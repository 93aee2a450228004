package lab_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mapt-go/mapt/internal/mapcli"
	"github.com/mapt-go/mapt/lab"
	"github.com/mapt-go/mapt/testenv"
)

// TestZeroTouch is the seed scenario: both CEs provision from Kea with no
// MAP configuration, derive the seed's bindings (CE 774: 192.0.2.59,
// 40960-43007), and c1 and c2 fetch the page and ping s.
func TestZeroTouch(t *testing.T) {
	l := lab.Up(t, lab.Options{Bin: testenv.BuildAgentAndBR(t)})
	if err := l.WaitProvisioned(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	want := map[string][3]string{
		"ce11b": {"192.0.2.8/32", "2001:db8:ce:11b:0:c000:208:1b", "55296"},
		"ce774": {"192.0.2.59/32", "2001:db8:ce:774:0:c000:23b:14", "40960"},
	}
	for _, c := range l.CEs {
		s, err := l.Status(c)
		if err != nil {
			t.Fatal(err)
		}
		w := want[c.Name]
		if s.Source != "dhcpv6" || s.Lease == nil || s.Lease.Prefix != c.Prefix || s.Binding == nil ||
			s.Binding.IPv4 != w[0] || s.Binding.MAPAddress != w[1] || s.Binding.Ports[0][0] != uint16(atoi(w[2])) || s.Binding.DMR != "64:ff9b::/96" {
			t.Fatalf("%s: status %+v binding %+v lease %+v", c.Name, s, s.Binding, s.Lease)
		}
		if s.WAN != "wan" {
			t.Errorf("%s picked WAN %q", c.Name, s.WAN)
		}
		// lab.Up made reverse-path filtering strict; by default the
		// translated packets enter IPv4 on the uplink, which passes it,
		// and the agent leaves the setting alone.
		if all := rpFilter(c.NS, "all"); all != "1" {
			t.Errorf("%s: net.ipv4.conf.all.rp_filter %s, want 1 (untouched)", c.Name, all)
		}
	}
	// What each CE derived from Kea's answer is exactly what the BR's
	// `br lookup` says about its MAP address, from the same domain file.
	for _, c := range l.CEs {
		s, _ := l.Status(c)
		stdout, stderr, code := testenv.RunBinary(t, filepath.Join(l.Opts.Bin, "br"), "lookup", "--config", l.Domain, "--json", s.Binding.MAPAddress)
		var lk mapcli.LookupIPv6JSON
		if code != 0 || json.Unmarshal([]byte(stdout), &lk) != nil {
			t.Fatalf("br lookup: %d %s %s", code, stdout, stderr)
		}
		if lk.IPv4+"/32" != s.Binding.IPv4 || lk.PSID != s.Binding.PSID || !reflect.DeepEqual(lk.Ports, s.Binding.Ports) || lk.EndUserPrefix != s.Binding.EndUserPrefix {
			t.Fatalf("%s: br lookup %+v, agent %+v", c.Name, lk, s.Binding)
		}
	}
	// The BR learned the routes to the delegated prefixes from Kea's hook.
	routes := l.BR.MustExec("ip", "-6", "route", "show", "proto", "static")
	for _, c := range l.CEs {
		if !strings.Contains(routes, c.Prefix) {
			t.Fatalf("BR has no route for %s:\n%s", c.Prefix, routes)
		}
	}
	for _, c := range l.CEs {
		dir := t.TempDir()
		c.Client.MustExec("wget", "-q", "-O", filepath.Join(dir, "index.html"), "http://"+testenv.SeedServer+"/index.html")
		b, err := os.ReadFile(filepath.Join(dir, "index.html"))
		if err != nil || !strings.HasPrefix(string(b), `<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"`) {
			t.Fatalf("%s: page %q %v", c.Client.Short, b, err)
		}
		c.Client.MustExec("ping", "-c", "2", "-i", "0.2", "-W", "3", testenv.SeedServer)
	}
}

// rpFilter reads a device's IPv4 rp_filter in ns.
func rpFilter(ns *testenv.NS, dev string) string {
	return strings.TrimSpace(ns.MustExec("sysctl", "-n", "net.ipv4.conf."+dev+".rp_filter"))
}

// TestInboundWAN runs the CEs with --inbound wan: what they translate from
// the BR goes on into their stack on the WAN. Under lab.Up's strict
// reverse-path filtering that works only because the agent turned it off
// for the WAN alone (the LAN keeps it), and the nft table clamps SYNs
// arriving on the WAN.
func TestInboundWAN(t *testing.T) {
	l := lab.Up(t, lab.Options{Bin: testenv.BuildAgentAndBR(t), AgentArgs: []string{"--inbound", "wan"}})
	if err := l.WaitProvisioned(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	for _, c := range l.CEs {
		if wan, all, lan := rpFilter(c.NS, "wan"), rpFilter(c.NS, "all"), rpFilter(c.NS, "lan"); wan != "0" || all != "0" || lan != "1" {
			t.Errorf("%s: rp_filter wan %s all %s lan %s, want 0 0 1", c.Name, wan, all, lan)
		}
		if out := c.NS.MustExec("nft", "list", "chain", "ip", "mapt", "mss-clamp"); !strings.Contains(out, `iifname "wan"`) {
			t.Errorf("%s: no clamp for SYNs from the WAN:\n%s", c.Name, out)
		}
		// Translated on the WAN's ingress and handed on, not redirected
		// into the uplink: nothing from the server arrives on mapt0.
		onUplink := c.NS.Capture("mapt0", "ip src "+testenv.SeedServer)
		out := c.Client.MustExec("wget", "-q", "-T", "10", "-O", "-", "http://"+testenv.SeedServer+"/index.html")
		if !strings.Contains(out, "<html") {
			t.Fatalf("%s: page %q", c.Client.Short, out)
		}
		c.Client.MustExec("ping", "-c", "2", "-i", "0.2", "-W", "3", testenv.SeedServer)
		if n := len(onUplink.Packets()); n != 0 {
			t.Errorf("%s: %d packets from the server arrived on mapt0, want 0 with --inbound wan", c.Name, n)
		}
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}
