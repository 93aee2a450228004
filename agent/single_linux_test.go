package agent_test

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"

	"github.com/mapt-go/mapt/agent"
	"github.com/mapt-go/mapt/dataplane"
	"github.com/mapt-go/mapt/testenv"
)

// staticArgs bind the CE statically (the seed's CE 11b).
var staticArgs = []string{"--rule", seedRule, "--dmr", "64:ff9b::/96", "--prefix", "2001:db8:ce:11b::/64"}

// TestOneAgentPerWAN starts an agent, then second ones that share its
// WAN, its state directory or its status socket: each exits non-zero
// naming the first one's PID, and the first keeps its binding, uplink,
// table, translator and socket.
func TestOneAgentPerWAN(t *testing.T) {
	c := newCELab(t)
	pins := testenv.BPFFS(t)
	// A second WAN, for the agents that only share a state dir or socket.
	c.lab.Veth(c.ce, "wan2", c.isp, "eth1")
	first := c.start(t, append(staticArgs, "--pin-dir", pins)...)
	c.waitState(t, first, "bound")
	pid := fmt.Sprint(first.Cmd.Process.Pid)
	state := filepath.Join(c.dir, "state")

	for _, tc := range []struct {
		name, why string
		args      []string
	}{
		{"same WAN", "WAN wan", []string{"--wan", "wan", "--state-dir", filepath.Join(c.dir, "other"), "--status-socket", filepath.Join(c.dir, "other.sock")}},
		{"same state dir", "state directory " + state, []string{"--wan", "wan2", "--state-dir", state, "--status-socket", filepath.Join(c.dir, "other.sock")}},
		{"same status socket", c.socket(), []string{"--wan", "wan2", "--state-dir", filepath.Join(c.dir, "other"), "--status-socket", c.socket()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{c.bin, "run", "--uplink", "mapt1", "--pin-dir", pins}, tc.args...)
			second := c.ce.Start(append(args, staticArgs...)...)
			out := second.Refused(t, 10*time.Second)
			if !strings.Contains(out, "pid "+pid) || !strings.Contains(out, tc.why) {
				t.Fatalf("second agent's message does not name pid %s and %q:\n%s", pid, tc.why, out)
			}
		})
	}
	if first.Exited() {
		t.Fatalf("the first agent exited:\n%s", first.Output())
	}
	s, err := agent.ReadStatus(c.socket())
	if err != nil || s.State != "bound" || s.AttachMode == "" {
		t.Fatalf("first agent after the others: %+v %v", s, err)
	}
	c.ce.MustExec("ip", "link", "show", "mapt0")
	c.ce.MustExec("nft", "list", "table", "ip", "mapt")
	if out, err := c.ce.Exec("ip", "link", "show", "mapt1"); err == nil {
		t.Fatalf("a second agent created its uplink: %s", out)
	}
}

// TestHooksHeld: our programs on the WAN's hooks are in the way while the
// agent that holds them lives (CheckHooks names it), and no longer once
// it was killed: its pinned translator is left for the next run, which
// adopts it.
func TestHooksHeld(t *testing.T) {
	c := newCELab(t)
	pins := testenv.BPFFS(t)
	p := c.start(t, append(staticArgs, "--pin-dir", pins)...)
	c.waitState(t, p, "bound")
	check := func() error {
		var err error
		c.ce.Do(func() error { err = dataplane.CheckHooks("wan"); return nil })
		return err
	}
	err := check()
	var iu *dataplane.InUseError
	if !errors.As(err, &iu) || iu.PID != p.Cmd.Process.Pid || !strings.Contains(iu.What, "wan's ingress hook") {
		t.Fatalf("CheckHooks with the agent running: %v, want pid %d on wan's ingress", err, p.Cmd.Process.Pid)
	}
	p.Signal(syscall.SIGKILL)
	p.Wait(5 * time.Second)
	if err := check(); err != nil {
		t.Fatalf("CheckHooks after the agent was killed: %v", err)
	}
	if dirs := testenv.PinnedDirs(pins); len(dirs) != 1 || !strings.HasPrefix(dirs[0], "ce-wan") {
		t.Fatalf("pins after kill -9: %v", dirs)
	}
	p = c.start(t, append(staticArgs, "--pin-dir", pins)...)
	c.waitState(t, p, "bound")
	if !strings.Contains(p.Output(), "adoption=kept") {
		t.Fatalf("the restarted agent did not keep the pinned translator:\n%s", p.Output())
	}
	// A forced re-apply (SIGHUP) lets go of the translator and adopts it
	// again: the same programs stay on the hooks.
	var before, after []string
	c.ce.Do(func() error { before = hookIDs(t, "wan"); return nil })
	p.Signal(syscall.SIGHUP)
	if !testenv.WaitFor(5*time.Second, func() bool { return strings.Count(p.Output(), "adoption=kept") == 2 }) {
		t.Fatalf("SIGHUP did not re-adopt the translator:\n%s", p.Output())
	}
	c.ce.Do(func() error { after = hookIDs(t, "wan"); return nil })
	if len(before) != 1 || strings.Join(before, ",") != strings.Join(after, ",") {
		t.Fatalf("programs on the WAN's ingress: %v before SIGHUP, %v after", before, after)
	}
	// SIGTERM without --leave-in-place removes everything, the pins too.
	p.Signal(syscall.SIGTERM)
	if err := p.Wait(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if dirs := testenv.PinnedDirs(pins); len(dirs) != 0 {
		t.Fatalf("pins after SIGTERM: %v", dirs)
	}
	if err := check(); err != nil {
		t.Fatal(err)
	}
}

// hookIDs lists the programs on dev's ingress (TCX and cls_bpf) in the
// caller's namespace.
func hookIDs(t *testing.T, dev string) []string {
	t.Helper()
	ifc, err := net.InterfaceByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	if q, err := link.QueryPrograms(link.QueryOptions{Target: ifc.Index, Attach: ebpf.AttachTCXIngress}); err == nil {
		for _, p := range q.Programs {
			ids = append(ids, fmt.Sprint(p.ID))
		}
	}
	fs, _ := netlink.FilterList(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: ifc.Index}}, netlink.HANDLE_MIN_INGRESS)
	for _, f := range fs {
		if bf, ok := f.(*netlink.BpfFilter); ok && strings.HasPrefix(bf.Name, "mapt-") {
			ids = append(ids, fmt.Sprint(bf.Id))
		}
	}
	return ids
}
