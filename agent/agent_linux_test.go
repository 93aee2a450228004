package agent_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mapt-go/mapt/agent"
	"github.com/mapt-go/mapt/testenv"
)

const seedRule = "2001:db8:ce::/51,192.0.2.0/24,13,a=0"

// ceLab is a CE namespace with a WAN veth to an "isp" namespace, and the
// agent binary.
type ceLab struct {
	lab      *testenv.Lab
	ce, isp  *testenv.NS
	bin, dir string
}

func newCELab(t *testing.T) *ceLab {
	testenv.Require(t, "ip", "nft")
	l := testenv.New(t)
	c := &ceLab{lab: l, ce: l.NS("ce"), isp: l.NS("isp"), bin: testenv.BuildBinary(t, "./cmd/ce-agent"), dir: l.Dir()}
	l.Veth(c.ce, "wan", c.isp, "eth0")
	c.ce.Addr("wan", "2001:db8:6::11b/64")
	c.isp.Addr("eth0", "2001:db8:6::1/64")
	c.ce.Forwarding()
	return c
}

func (c *ceLab) socket() string { return filepath.Join(c.dir, "status.sock") }

func (c *ceLab) start(t *testing.T, extra ...string) *testenv.Proc {
	args := append([]string{c.bin, "run", "--wan", "wan", "--state-dir", filepath.Join(c.dir, "state"),
		"--status-socket", c.socket(), "--log-level", "debug"}, extra...)
	return c.ce.Start(args...)
}

// waitState polls the status socket until the agent reports state.
func (c *ceLab) waitState(t *testing.T, p *testenv.Proc, state string) *agent.Status {
	t.Helper()
	var s *agent.Status
	ok := testenv.WaitFor(15*time.Second, func() bool {
		var err error
		s, err = agent.ReadStatus(c.socket())
		return err == nil && s.State == state || p.Exited()
	})
	if !ok || p.Exited() {
		t.Fatalf("agent never reached %q (last status %+v); output:\n%s", state, s, p.Output())
	}
	return s
}

func TestStaticBindingLifecycle(t *testing.T) {
	c := newCELab(t)
	hookOut := filepath.Join(c.dir, "hook.out")
	hook := filepath.Join(c.dir, "hook.sh")
	os.WriteFile(hook, []byte("#!/bin/sh\n{ echo \"event $1\"; env | grep ^MAPT_ | sort; } >> "+hookOut+"\n"), 0o755)
	p := c.start(t, "--rule", seedRule, "--dmr", "64:ff9b::/96", "--prefix", "2001:db8:ce:11b::/64", "--hook", hook)
	s := c.waitState(t, p, "bound")
	if s.Binding == nil || s.Binding.IPv4 != "192.0.2.8/32" || s.Binding.PSID != 27 || s.Binding.Ports[0] != [2]uint16{55296, 57343} || s.Source != "static" {
		t.Fatalf("status = %+v", s)
	}
	// Auto mode: TCX where the kernel has it (6.6+), clsact before.
	wantMode := "clsact"
	if testenv.HaveTCX(t) {
		wantMode = "tcx"
	}
	if s.AttachMode != wantMode || len(s.Counters) == 0 {
		t.Fatalf("translator: attach mode %q, counters %v", s.AttachMode, s.Counters)
	}
	if n, ok := s.Counters[agent.NATInsertFailed]; !ok || n != 0 {
		t.Fatalf("status counter %s = %d (present %v), want 0 in a fresh namespace", agent.NATInsertFailed, n, ok)
	}
	// The uplink: a TUN device with MTU = min(WAN MTU, lowest-ipv6-mtu,
	// 1280 by default) - 28, our address, the default route.
	link := c.ce.MustExec("ip", "-d", "-j", "link", "show", "mapt0")
	var links []struct {
		MTU      int `json:"mtu"`
		LinkInfo struct {
			Kind string `json:"info_kind"`
		} `json:"linkinfo"`
	}
	if err := json.Unmarshal([]byte(link), &links); err != nil || len(links) != 1 || links[0].MTU != 1252 || links[0].LinkInfo.Kind != "tun" {
		t.Fatalf("uplink: %s (%v)", link, err)
	}
	if out := c.ce.MustExec("ip", "-4", "addr", "show", "dev", "mapt0"); !strings.Contains(out, "192.0.2.8/32") {
		t.Fatalf("uplink address: %s", out)
	}
	if out := c.ce.MustExec("ip", "-4", "route", "show", "default"); !strings.Contains(out, "dev mapt0") {
		t.Fatalf("default route: %s", out)
	}
	if out := c.ce.MustExec("nft", "list", "table", "ip", "mapt"); !strings.Contains(out, "192.0.2.8") {
		t.Fatalf("nat table: %s", out)
	}
	// ce-agent status, as an operator runs it.
	stdout, stderr, code := testenv.RunBinary(t, c.bin, "status", "--status-socket", c.socket())
	if code != 0 || !strings.Contains(stdout, "ports            55296-57343 (2048 ports)") || !strings.Contains(stdout, "map-address      2001:db8:ce:11b:0:c000:208:1b") {
		t.Fatalf("status: %d %s %s", code, stdout, stderr)
	}
	if fi, err := os.Stat(c.socket()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("status socket mode: %v %v", fi.Mode(), err)
	}
	// SIGHUP re-applies without changing anything.
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if !testenv.WaitFor(5*time.Second, func() bool { return strings.Contains(p.Output(), "SIGHUP: re-applying") }) {
		t.Fatalf("no SIGHUP handling:\n%s", p.Output())
	}
	// SIGTERM removes everything.
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(10 * time.Second); err != nil {
		t.Fatalf("agent exit: %v\n%s", err, p.Output())
	}
	if out, err := c.ce.Exec("ip", "link", "show", "mapt0"); err == nil {
		t.Fatalf("uplink left behind: %s", out)
	}
	if out, err := c.ce.Exec("nft", "list", "table", "ip", "mapt"); err == nil {
		t.Fatalf("nat table left behind: %s", out)
	}
	if _, err := os.Stat(c.socket()); !os.IsNotExist(err) {
		t.Fatalf("status socket left behind: %v", err)
	}
	// The hook saw the binding, then the stop.
	b, _ := os.ReadFile(hookOut)
	for _, want := range []string{"event static\n", "MAPT_IPV4=192.0.2.8/32\n", "MAPT_PORTS=55296-57343\n", "MAPT_PSID=27\n",
		"MAPT_MAP_ADDRESS=2001:db8:ce:11b:0:c000:208:1b\n", "event stopped\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("hook output lacks %q:\n%s", want, b)
		}
	}
}

// TestLeaveInPlaceAndAdopt stops an agent with --leave-in-place, then
// starts another: it adopts the device and table instead of duplicating
// them.
func TestLeaveInPlaceAndAdopt(t *testing.T) {
	c := newCELab(t)
	args := []string{"--rule", seedRule, "--dmr", "64:ff9b::/96", "--prefix", "2001:db8:ce:774::/64"}
	p := c.start(t, append(args, "--leave-in-place")...)
	c.waitState(t, p, "bound")
	p.Signal(syscall.SIGTERM)
	if err := p.Wait(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	before := c.ce.MustExec("ip", "-d", "link", "show", "mapt0")
	p2 := c.start(t, args...)
	s := c.waitState(t, p2, "bound")
	if s.Binding.IPv4 != "192.0.2.59/32" {
		t.Fatalf("status = %+v", s.Binding)
	}
	after := c.ce.MustExec("ip", "-d", "link", "show", "mapt0")
	if strings.Fields(before)[0] != strings.Fields(after)[0] {
		t.Fatalf("uplink re-created: %q -> %q", strings.Fields(before)[0], strings.Fields(after)[0])
	}
	if n := strings.Count(c.ce.MustExec("ip", "link"), "mapt0"); n != 1 {
		t.Fatalf("%d uplink devices", n)
	}
	if n := strings.Count(c.ce.MustExec("nft", "list", "tables"), "mapt"); n != 1 {
		t.Fatalf("%d nat tables", n)
	}
	if !strings.Contains(p2.Output(), "binding applied") {
		t.Fatalf("output:\n%s", p2.Output())
	}
}

func TestRunBadFlags(t *testing.T) {
	bin := testenv.BuildBinary(t, "./cmd/ce-agent")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--rule", seedRule, "--domain", "x.yaml"}, "not both"},
		{[]string{"run", "--prefix", "2001:db8::/56"}, "need --domain or --rule"},
		{[]string{"run", "--rule", seedRule, "--dmr", "64:ff9b::/80"}, "dmr 64:ff9b::/80"},
		{[]string{"run", "--log-level", "loud"}, `--log-level "loud"`},
		{[]string{"run", "--domain", "/nonexistent.yaml"}, "nonexistent.yaml"},
		{[]string{"status", "--status-socket", "/nonexistent.sock"}, "no agent is listening"},
	} {
		stdout, stderr, code := testenv.RunBinary(t, bin, tc.args...)
		if code == 0 || stdout != "" || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: %d %q %q; want an error containing %q", tc.args, code, stdout, stderr, tc.want)
		}
	}
}

// TestWANLater starts the agent before its WAN device exists (a PPPoE or
// VLAN device that comes up after it): it waits, and binds when the
// device appears.
func TestWANLater(t *testing.T) {
	testenv.Require(t, "ip", "nft")
	l := testenv.New(t)
	ce, isp := l.NS("ce"), l.NS("isp")
	c := &ceLab{lab: l, ce: ce, isp: isp, bin: testenv.BuildBinary(t, "./cmd/ce-agent"), dir: l.Dir()}
	p := c.start(t, "--rule", seedRule, "--dmr", "64:ff9b::/96", "--prefix", "2001:db8:ce:11b::/64")
	if !testenv.WaitFor(5*time.Second, func() bool { return strings.Contains(p.Output(), "the device does not exist") }) || p.Exited() {
		t.Fatalf("agent without its WAN:\n%s", p.Output())
	}
	l.Veth(ce, "wan", isp, "eth0")
	s := c.waitState(t, p, "bound")
	// The link's state follows the veth peer's: under emulation it can
	// still be coming up when the binding is there.
	ok := func(s *agent.Status) bool {
		return s.Link != nil && s.Link.State == "up" && s.AttachMode != "" && s.Binding != nil && s.Binding.IPv4 == "192.0.2.8/32"
	}
	testenv.WaitFor(10*time.Second, func() bool {
		if n, err := agent.ReadStatus(c.socket()); err == nil {
			s = n
		}
		return ok(s)
	})
	if !ok(s) {
		t.Fatalf("status %+v, link %+v", s, s.Link)
	}
}

// TestWANLaterDHCPv6: the same with the DHCPv6 client, which needs the
// device for its socket: it starts soliciting once the device is there.
func TestWANLaterDHCPv6(t *testing.T) {
	testenv.Require(t, "ip", "nft")
	l := testenv.New(t)
	ce, isp := l.NS("ce"), l.NS("isp")
	c := &ceLab{lab: l, ce: ce, isp: isp, bin: testenv.BuildBinary(t, "./cmd/ce-agent"), dir: l.Dir()}
	p := c.start(t)
	if !testenv.WaitFor(5*time.Second, func() bool { return strings.Contains(p.Output(), "waiting for the WAN device") }) || p.Exited() {
		t.Fatalf("agent without its WAN:\n%s", p.Output())
	}
	if strings.Contains(p.Output(), "soliciting") {
		t.Fatalf("solicited without a device:\n%s", p.Output())
	}
	l.Veth(ce, "wan", isp, "eth0")
	if !testenv.WaitFor(5*time.Second, func() bool { return strings.Contains(p.Output(), "provision: soliciting") }) || p.Exited() {
		t.Fatalf("no DHCPv6 once the device came:\n%s", p.Output())
	}
}
