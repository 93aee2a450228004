package openwrt_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mapt-go/mapt/agent"
	"github.com/mapt-go/mapt/lab"
	"github.com/mapt-go/mapt/testenv"
)

// keaLANOptions adds to the lab's Kea what an ISP's server gives a home
// router besides the prefix and the MAP-T rules: DNS servers, a search
// list and NTP servers (RFC 3646, RFC 5908; Kea 2.2 has no definition for
// option 56, so it goes as raw bytes).
func keaLANOptions(d6 map[string]any) {
	subnet := d6["subnet6"].([]any)[0].(map[string]any)
	opts, _ := subnet["option-data"].([]any)
	fqdn := []byte("\x03ntp\x03isp\x07example\x00")
	ntp := fmt.Sprintf("0001001020010db8000600000000000000000123"+"0003%04x%x", len(fqdn), fqdn)
	subnet["option-data"] = append(opts,
		map[string]any{"name": "dns-servers", "data": "2001:db8:6::53, 2001:db8:6::54"},
		map[string]any{"name": "domain-search", "data": "isp.example, lab.isp.example"},
		map[string]any{"name": "ntp-server", "code": 56, "csv-format": false, "data": ntp},
	)
	defs, _ := d6["option-def"].([]any)
	d6["option-def"] = append(defs, map[string]any{"name": "ntp-server", "code": 56, "type": "binary"})
}

// netifdCE is CE 11b of the lab run the OpenWrt way: the proto mapt
// handler's setup (through the netifd stubs) gives the command netifd
// would run; the test runs it in the CE's namespace with the environment
// netifd would give it, and the agent's notify script reports to the
// stubs, whose log the test reads.
type netifdCE struct {
	t             *testing.T
	l             *lab.Lab
	ce            *lab.CE
	bin, stubLog  string
	stateDir, run string
	agentProc     *testenv.Proc
	argv, exports []string
	notifyPath    string
	handlerSysctl string
	root          string
}

func newNetifdCE(t *testing.T, l *lab.Lab, bin string) *netifdCE {
	n := &netifdCE{t: t, l: l, ce: l.CEs[0], bin: bin, stateDir: t.TempDir(), run: t.TempDir(), handlerSysctl: t.TempDir()}
	var err error
	if n.notifyPath, err = filepath.Abs("ce-agent/files/mapt.script"); err != nil {
		t.Fatal(err)
	}
	if n.root, err = filepath.Abs("testdata/root"); err != nil {
		t.Fatal(err)
	}
	n.stubLog = filepath.Join(t.TempDir(), "netifd.log")
	return n
}

// handlerEnv is what the handler runs with: the paths of this test.
func (n *netifdCE) handlerEnv() []string {
	return []string{"MAPT_AGENT=" + n.bin, "MAPT_NOTIFY=" + n.notifyPath, "MAPT_STATE_DIR=" + n.stateDir,
		"MAPT_RUN_DIR=" + n.run, "MAPT_SYSCTL=" + n.handlerSysctl}
}

// ifup runs the handler's setup and starts what it asked netifd to run.
func (n *netifdCE) ifup() {
	t := n.t
	t.Helper()
	r := runHandler(t, map[string]string{"network": networkStock}, map[string]string{"device": "wan"}, n.handlerEnv(), "proto_mapt_setup", "wan6")
	cmds := r.named("proto_run_command")
	if r.err != nil || len(cmds) != 1 {
		t.Fatalf("setup: %v %s %q", r.err, r.stderr, r.calls)
	}
	n.argv = cmds[0][1:]
	n.exports = nil
	for _, e := range r.named("proto_export") {
		n.exports = append(n.exports, e...)
	}
	// netifd runs the command with the exported variables; the notify
	// script finds the stubs (ubus, logger, netifd-proto.sh) as the test
	// harness puts them.
	env := append([]string{"env", "PATH=" + filepath.Join(n.root, "bin") + ":/usr/sbin:/usr/bin:/sbin:/bin", "IPKG_INSTROOT=" + n.root,
		"STUB_LOG=" + n.stubLog, "LC_ALL=C"}, n.exports...)
	n.agentProc = n.ce.NS.Start(append(env, n.argv...)...)
}

func (n *netifdCE) socket() string {
	for i, a := range n.argv {
		if a == "--status-socket" {
			return n.argv[i+1]
		}
	}
	n.t.Fatalf("no --status-socket in %q", n.argv)
	return ""
}

// calls returns what the notify script told netifd so far.
func (n *netifdCE) calls() []call {
	b, err := os.ReadFile(n.stubLog)
	if err != nil && !os.IsNotExist(err) {
		n.t.Fatal(err)
	}
	var out []call
	for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if line == "" {
			continue
		}
		f := strings.Split(line, "\t")
		out = append(out, call{name: f[0], args: f[1:]})
	}
	return out
}

// waitCall waits for a call of that name after the first skip calls.
func (n *netifdCE) waitCall(skip int, name string, timeout time.Duration) call {
	n.t.Helper()
	var found call
	if !testenv.WaitFor(timeout, func() bool {
		cs := n.calls()
		for _, c := range cs[min(skip, len(cs)):] {
			if c.name == name {
				found = c
				return true
			}
		}
		return n.agentProc.Exited()
	}) || found.name == "" {
		n.t.Fatalf("netifd was never told %s; calls %q\nagent:\n%s", name, n.calls(), n.agentProc.Output())
	}
	return found
}

// TestNetifdWithKea is the package on a router in the lab, against real
// Kea offering PD, the S46 MAP-T container, DNS, search list and NTP:
// netifd is told the prefix with its lifetimes, the DNS servers and search
// list, NTP, and gets the IPv4 interface with the CE's address, default
// route and zone; c1 fetches the seed's page through it. ifdown withdraws
// everything (and releases the prefix at Kea), ifup brings it back.
func TestNetifdWithKea(t *testing.T) {
	bins := testenv.BuildAgentAndBR(t)
	// The lab's own agents release on stop, so that CE 11b's lease is free
	// for the handler's agent (IAID 1, as odhcp6c's).
	l := lab.Up(t, lab.Options{Bin: bins, KeaConfig: keaLANOptions, AgentArgs: []string{"--release-on-stop"}})
	if err := l.WaitProvisioned(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	ce := l.CEs[0]
	ce.Agent.Stop()
	if !testenv.WaitFor(5*time.Second, func() bool {
		return strings.Contains(l.Kea.Output(), "DHCP6_RELEASE_PD duid=[00:03:00:01:02:00:00:00:01:1b]")
	}) {
		t.Fatalf("the lab's agent did not release:\n%s", ce.Agent.Output())
	}
	n := newNetifdCE(t, l, filepath.Join(bins, "ce-agent"))

	up := func(skip int) {
		t.Helper()
		n.ifup()
		update := n.waitCall(skip, "proto_send_update", 20*time.Second)
		if update.args[0] != "wan6" {
			t.Fatalf("update for %q", update.args)
		}
		// The IPv4 interface comes right after the update.
		n.waitCall(skip, "ubus", 5*time.Second)
		calls := n.calls()[skip:]
		byName := func(name string) [][]string {
			var out [][]string
			for _, c := range calls {
				if c.name == name {
					out = append(out, c.args)
				}
			}
			return out
		}
		if got := byName("proto_init_update"); len(got) == 0 || strings.Join(got[0], " ") != "wan 1 1" {
			t.Errorf("init_update %q", got)
		}
		// The prefix with what is left of Kea's 3000/4000 s lifetimes.
		pfx := byName("proto_add_ipv6_prefix")
		if len(pfx) == 0 {
			t.Fatalf("no prefix; calls %q", calls)
		}
		f := strings.Split(pfx[0][0], ",")
		pref, _ := strconv.Atoi(f[1])
		valid, _ := strconv.Atoi(f[2])
		if len(f) != 3 || f[0] != "2001:db8:ce:11b::/64" || pref < 2990 || pref > 3000 || valid < 3990 || valid > 4000 {
			t.Errorf("prefix %q, want 2001:db8:ce:11b::/64 with about 3000 s preferred, 4000 s valid", pfx[0])
		}
		if got := fmt.Sprint(byName("proto_add_dns_server")); got != "[[2001:db8:6::53] [2001:db8:6::54]]" {
			t.Errorf("dns %s", got)
		}
		if got := fmt.Sprint(byName("proto_add_dns_search")); got != "[[isp.example] [lab.isp.example]]" {
			t.Errorf("search %s", got)
		}
		var data struct {
			NTP []string `json:"ntpserver"`
		}
		if d := byName("proto_close_data"); len(d) == 0 || json.Unmarshal([]byte(d[0][0]), &data) != nil ||
			strings.Join(data.NTP, " ") != "2001:db8:6::123 ntp.isp.example" {
			t.Errorf("data %q", d)
		}
		// The IPv4 interface: netifd would set it up with the handler;
		// so does the test, and applies the default route netifd would
		// install (the agent runs with --no-default-route under netifd).
		var dyn map[string]any
		for _, u := range byName("ubus") {
			if len(u) == 4 && u[2] == "add_dynamic" {
				if err := json.Unmarshal([]byte(u[3]), &dyn); err != nil {
					t.Fatal(err)
				}
			}
		}
		if dyn["ipaddr"] != "192.0.2.8" || dyn["uplink"] != "map-wan6" || dyn["name"] != "wan6_4" {
			t.Fatalf("IPv4 interface %v", dyn)
		}
		cfg := map[string]string{}
		for k, v := range dyn {
			cfg[k] = fmt.Sprint(v)
		}
		r := runHandler(t, nil, cfg, nil, "proto_mapt_setup", "wan6_4")
		if got := r.named("proto_add_ipv4_address"); fmt.Sprint(got) != "[[192.0.2.8 32]]" {
			t.Errorf("IPv4 address %q", got)
		}
		init4 := r.named("proto_init_update")
		route := r.named("proto_add_ipv4_route")
		if fmt.Sprint(init4) != "[[map-wan6 1 1]]" || fmt.Sprint(route) != "[[0.0.0.0 0]]" {
			t.Fatalf("IPv4 interface: %q %q", init4, route)
		}
		if out := ce.NS.MustExec("ip", "-4", "route", "show", "default"); strings.TrimSpace(out) != "" {
			t.Errorf("the agent installed a default route itself under netifd: %s", out)
		}
		ce.NS.MustExec("ip", "route", "replace", "default", "dev", init4[0][0])
		out := l.C1.MustExec("wget", "-q", "-T", "10", "-t", "2", "-O", "-", "http://"+testenv.SeedServer+"/index.html")
		if !strings.HasPrefix(out, "<!DOCTYPE html") {
			t.Errorf("c1's page through the netifd-run CE: %q", out)
		}
		s, err := agent.ReadStatus(n.socket())
		if err != nil || s.Lease == nil || len(s.Lease.DNS) != 2 || s.Lease.Softwire != "map-t" || s.Link == nil || s.Link.State != "up" {
			t.Errorf("status %+v (%v)", s, err)
		}
	}
	up(0)

	// ifdown: the handler's teardown asks netifd to SIGTERM the agent.
	skip := len(n.calls())
	r := runHandler(t, map[string]string{"network": networkStock}, map[string]string{"device": "wan"}, n.handlerEnv(), "proto_mapt_teardown", "wan6")
	if fmt.Sprint(r.named("proto_kill_command")) != "[[wan6]]" {
		t.Fatalf("teardown %q", r.calls)
	}
	if err := n.agentProc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := n.agentProc.Wait(10 * time.Second); err != nil {
		t.Fatalf("agent: %v\n%s", err, n.agentProc.Output())
	}
	down := n.calls()[skip:]
	var sawRemove, sawDown bool
	for _, c := range down {
		sawRemove = sawRemove || c.name == "ubus" && strings.Join(c.args, " ") == "call network.interface.wan6_4 remove"
		sawDown = sawDown || c.name == "proto_init_update" && strings.Join(c.args, " ") == "wan 0"
	}
	if !sawRemove || !sawDown {
		t.Errorf("on stop netifd was told %q; want the IPv4 interface removed and the link down", down)
	}
	if out, err := ce.NS.Exec("ip", "link", "show", "map-wan6"); err == nil {
		t.Errorf("uplink left behind: %s", out)
	}
	if !testenv.WaitFor(5*time.Second, func() bool {
		return strings.Count(l.Kea.Output(), "DHCP6_RELEASE_PD duid=[00:03:00:01:02:00:00:00:01:1b]") >= 2
	}) {
		t.Error("the prefix was not released at ifdown")
	}

	// ifup (or /etc/init.d/network restart): back again.
	up(len(n.calls()))
}
