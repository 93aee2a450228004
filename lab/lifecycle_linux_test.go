package lab_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mapt-go/mapt/lab"
	"github.com/mapt-go/mapt/testenv"
)

// TestExpiry stops Kea: when the valid lifetime (4 s here) runs out the
// CEs withdraw their IPv4 service and leave nothing behind.
func TestExpiry(t *testing.T) {
	l := up(t, lab.Options{RenewTimer: 1})
	wget(t, l.C1)
	l.Kea.Stop()
	c := l.CEs[0]
	if !testenv.WaitFor(15*time.Second, func() bool {
		s, err := l.Status(c)
		return err == nil && s.State == "expired"
	}) {
		t.Fatalf("no expiry:\n%s", c.Agent.Output())
	}
	if out, err := c.NS.Exec("ip", "link", "show", "mapt0"); err == nil {
		t.Fatalf("uplink still there: %s", out)
	}
	if out, err := c.NS.Exec("nft", "list", "table", "ip", "mapt"); err == nil {
		t.Fatalf("nat table still there: %s", out)
	}
	if _, err := l.C1.Exec("ping", "-c", "1", "-W", "1", testenv.SeedServer); err == nil {
		t.Fatal("c1 still reaches s")
	}
}

// TestInvalidContainer has Kea send a MAP-T container without a DMR: the
// agent ignores it, says why, and stays without IPv4.
func TestInvalidContainer(t *testing.T) {
	o := lab.Options{Bin: testenv.BuildAgentAndBR(t), KeaConfig: func(d6 map[string]any) {
		subnet := d6["subnet6"].([]any)[0].(map[string]any)
		var kept []any
		for _, o := range subnet["option-data"].([]any) {
			if o.(map[string]any)["name"] != "s46-dmr" {
				kept = append(kept, o)
			}
		}
		subnet["option-data"] = kept
	}}
	l := lab.Up(t, o)
	c := l.CEs[0]
	if !testenv.WaitFor(15*time.Second, func() bool { return strings.Contains(c.Agent.Output(), "MAP-T container 1 ignored") }) {
		t.Fatalf("no log line for the invalid container:\n%s", c.Agent.Output())
	}
	if !strings.Contains(c.Agent.Output(), "DMR") {
		t.Fatalf("the log does not say what is wrong:\n%s", c.Agent.Output())
	}
	s, err := l.Status(c)
	if err != nil || s.State != "waiting" || s.Binding != nil {
		t.Fatalf("status %+v %v", s, err)
	}
	if _, err := c.NS.Exec("ip", "link", "show", "mapt0"); err == nil {
		t.Fatal("an uplink was created without a valid container")
	}
}

// TestLongestMatch offers two rules: CE 774's prefix is inside both, and
// the longer one wins; CE 11b's is inside the seed's rule only.
func TestLongestMatch(t *testing.T) {
	l := up(t, lab.Options{ExtraRules: `      - ipv6-prefix: 2001:db8:ce:700::/56
        ipv4-prefix: 198.51.100.0/24
        ea-len: 8
        psid-offset: 0
`})
	want := map[string]string{"ce11b": "192.0.2.8/32", "ce774": "198.51.100.116/32"}
	for _, c := range l.CEs {
		s, err := l.Status(c)
		if err != nil || s.Binding.IPv4 != want[c.Name] {
			t.Fatalf("%s: %+v %v", c.Name, s.Binding, err)
		}
	}
	s, _ := l.Status(l.CEs[1])
	if s.Binding.Rule != "2001:db8:ce:700::/56,198.51.100.0/24,8,a=0" || s.Binding.PortCount != 65536 {
		t.Fatalf("ce774 BMR %s, %d ports", s.Binding.Rule, s.Binding.PortCount)
	}
	// s learns the second rule's IPv4 prefix, as the Internet would.
	l.S.Route("198.51.100.0/24", "via", "203.0.113.1")
	wget(t, l.C2)
}

// TestKillAndRestart kills an agent with SIGKILL under an established TCP
// connection and starts it again: it resumes from its lease, adopts its
// device and table, and the connection carries on.
func TestKillAndRestart(t *testing.T) {
	l := up(t, lab.Options{})
	l.S.EchoTCP("tcp", ":7")
	conn, err := l.C1.Dial("tcp", "", testenv.SeedServer+":7", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	say := func(msg string) {
		t.Helper()
		fmt.Fprintln(conn, msg)
		conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		line, err := r.ReadString('\n')
		if err != nil || line != msg+"\n" {
			t.Fatalf("echo of %q: %q %v", msg, line, err)
		}
	}
	say("before")
	c := l.CEs[0]
	before, _ := l.Status(c)
	c.Agent.Signal(syscall.SIGKILL)
	c.Agent.Wait(5 * time.Second)
	l.StartAgent(c)
	if err := l.WaitProvisioned(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	after, _ := l.Status(c)
	if after.Binding.IPv4 != before.Binding.IPv4 || after.Binding.MAPAddress != before.Binding.MAPAddress {
		t.Fatalf("binding changed: %+v -> %+v", before.Binding, after.Binding)
	}
	if !strings.Contains(c.Agent.Output(), "resum") {
		t.Fatalf("the agent did not resume its lease:\n%s", c.Agent.Output())
	}
	say("after the restart")
	if n := strings.Count(c.NS.MustExec("ip", "-o", "link"), "mapt0"); n != 1 {
		t.Fatalf("%d uplink devices", n)
	}
	if n := strings.Count(c.NS.MustExec("nft", "list", "tables"), "table ip mapt"); n != 1 {
		t.Fatalf("%d nat tables", n)
	}
}

// TestStaticDomainWithPD is a network without S46 options: Kea delegates
// prefixes only, and the CEs take their rules from the domain file
// (--domain), their prefix from DHCPv6.
func TestStaticDomainWithPD(t *testing.T) {
	dir := t.TempDir()
	domain := filepath.Join(dir, "domain.yaml")
	if err := os.WriteFile(domain, []byte(lab.DomainYAML(lab.Options{})), 0o644); err != nil {
		t.Fatal(err)
	}
	l := up(t, lab.Options{AgentArgs: []string{"--domain", domain}, KeaConfig: func(d6 map[string]any) {
		d6["subnet6"].([]any)[0].(map[string]any)["option-data"] = []any{}
	}})
	for _, c := range l.CEs {
		s, err := l.Status(c)
		if err != nil || s.Source != "static" || s.Lease == nil || s.Lease.Prefix != c.Prefix || s.Binding == nil {
			t.Fatalf("%s: %+v %v", c.Name, s, err)
		}
	}
	s, _ := l.Status(l.CEs[1])
	if s.Binding.IPv4 != "192.0.2.59/32" || s.Binding.Ports[0] != [2]uint16{40960, 43007} {
		t.Fatalf("ce774: %+v", s.Binding)
	}
	wget(t, l.C1)
	wget(t, l.C2)
}
