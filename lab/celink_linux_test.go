package lab_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket/layers"
	"github.com/insomniacslk/dhcp/dhcpv6"

	"github.com/mapt-go/mapt/lab"
	"github.com/mapt-go/mapt/testenv"
)

// rebinds counts the DHCPv6 Rebind messages in a capture.
func rebinds(c *testenv.Capture) int {
	n := 0
	for _, p := range c.Packets() {
		if u, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP); ok && u.DstPort == dhcpv6.DefaultServerPort &&
			len(u.Payload) > 0 && dhcpv6.MessageType(u.Payload[0]) == dhcpv6.MessageTypeRebind {
			n++
		}
	}
	return n
}

// TestCELinkEvents takes CE 11b's WAN through what a home router's WAN
// goes through, with the agent running on and traffic through the BR
// checked after each: the carrier lost and back (RFC 8415 s18.2.12: the
// CE Rebinds at once, not at T1 1000 s away), the device deleted and
// created again under the same name (a PPPoE or VLAN reconnect: a new
// ifindex, the TC hooks and the DHCPv6 socket's device gone), and a lower
// MTU (the uplink, the MSS clamp and the translator's limit follow).
func TestCELinkEvents(t *testing.T) {
	// The lab's paths carry 1500 bytes: with lowest-ipv6-mtu 1500 the
	// uplink follows the WAN's MTU (with the default 1280 it would sit at
	// 1252 whatever the WAN).
	l := up(t, lab.Options{AgentArgs: []string{"--lowest-ipv6-mtu", "1500"}})
	startServers(t, l)
	ce, c1 := l.CEs[0], l.C1
	udpEcho(t, c1, "")

	t.Run("carrier", func(t *testing.T) {
		capt := l.BR.Capture("eth0", "udp port 547")
		l.Switch.MustExec("ip", "link", "set", "p-ce11b", "down")
		if !testenv.WaitFor(5*time.Second, func() bool {
			s, err := l.Status(ce)
			return err == nil && s.Link != nil && s.Link.State == "no-carrier"
		}) {
			t.Fatalf("the agent did not see the carrier go:\n%s", ce.Agent.Output())
		}
		l.Switch.MustExec("ip", "link", "set", "p-ce11b", "up")
		t0 := time.Now()
		if !testenv.WaitFor(5*time.Second, func() bool { return rebinds(capt) > 0 }) {
			t.Fatalf("no Rebind within 5 s of the carrier's return (T1 is 1000 s away):\n%s", ce.Agent.Output())
		}
		t.Logf("Rebind %s after the carrier came back", time.Since(t0).Round(time.Millisecond))
		if !testenv.WaitFor(5*time.Second, func() bool { return strings.Contains(ce.Agent.Output(), "provision: rebound") }) {
			t.Fatalf("Kea's Reply to the Rebind not taken:\n%s", ce.Agent.Output())
		}
		udpEcho(t, c1, "")
	})

	t.Run("device re-created", func(t *testing.T) {
		before := strings.TrimSpace(ce.NS.MustExec("cat", "/sys/class/net/wan/ifindex"))
		capt := l.BR.Capture("eth0", "udp port 547")
		ce.NS.MustExec("ip", "link", "del", "wan")
		if !testenv.WaitFor(5*time.Second, func() bool {
			s, err := l.Status(ce)
			return err == nil && s.Link != nil && s.Link.State == "absent"
		}) {
			t.Fatalf("the agent did not see the device go:\n%s", ce.Agent.Output())
		}
		// The same device again, as the seed made it: MAC, address and
		// default route (a router advertisement's, in a real network).
		l.Switch.MustExec("ip", "link", "add", "p-ce11b", "type", "veth", "peer", "name", "wan", "address", ce.MAC, "netns", ce.NS.Name)
		l.Switch.MustExec("ip", "link", "set", "p-ce11b", "master", "br0", "up")
		ce.NS.MustExec("ip", "link", "set", "wan", "up")
		ce.NS.Addr("wan", testenv.SeedCE11bWAN+"/64")
		ce.NS.Route("default", "via", testenv.SeedBRv6)
		after := strings.TrimSpace(ce.NS.MustExec("cat", "/sys/class/net/wan/ifindex"))
		if after == before {
			t.Fatalf("wan kept ifindex %s", before)
		}
		if !testenv.WaitFor(10*time.Second, func() bool {
			s, err := l.Status(ce)
			return err == nil && s.Link != nil && s.Link.State == "up" && s.AttachMode != "" && rebinds(capt) > 0
		}) {
			s, _ := l.Status(ce)
			t.Fatalf("no recovery on ifindex %s (status %+v, %d Rebinds):\n%s", after, s, rebinds(capt), ce.Agent.Output())
		}
		udpEcho(t, c1, "")
		wget(t, c1)
		if strings.Contains(ce.Agent.Output(), "provision: read\"") {
			t.Errorf("the old socket's reader failed:\n%s", ce.Agent.Output())
		}
	})

	t.Run("mtu", func(t *testing.T) {
		ce.NS.MustExec("ip", "link", "set", "wan", "mtu", "1400")
		// The uplink's MTU comes first, the translator last.
		if !testenv.WaitFor(5*time.Second, func() bool {
			out, err := ce.NS.Exec("cat", "/sys/class/net/mapt0/mtu")
			s, serr := l.Status(ce)
			return err == nil && strings.TrimSpace(out) == "1372" && serr == nil && len(s.Events) > 0 &&
				strings.HasPrefix(s.Events[len(s.Events)-1].Message, "mtu: 192.0.2.8")
		}) {
			out, _ := ce.NS.Exec("cat", "/sys/class/net/mapt0/mtu")
			t.Fatalf("uplink MTU %s after the WAN went to 1400, want 1372:\n%s", out, ce.Agent.Output())
		}
		// MSS = uplink MTU - 40.
		if out := ce.NS.MustExec("nft", "list", "table", "ip", "mapt"); !strings.Contains(out, "maxseg size set 1332") {
			t.Errorf("MSS clamp not 1332:\n%s", out)
		}
		// A DF datagram that fits the old uplink but not the new: c1
		// learns the new MTU from the CE (Fragmentation Needed) instead
		// of losing it past the translator.
		out, _ := c1.Exec("ping", "-c", "1", "-W", "2", "-M", "do", "-s", "1400", testenv.SeedServer)
		if !strings.Contains(out, "mtu = 1372") {
			t.Errorf("ping of 1428 bytes with DF: %s; want Fragmentation Needed with mtu 1372 from the CE", out)
		}
		// Under 1280 bytes once translated, so that the BR's
		// lowest-ipv6-mtu (1280) leaves the reply alone.
		if out, err := c1.Exec("ping", "-c", "2", "-W", "2", "-M", "do", "-s", "1200", testenv.SeedServer); err != nil {
			t.Errorf("ping of 1228 bytes: %v\n%s", err, out)
		}
		s, err := l.Status(ce)
		if err != nil || s.Link == nil || s.Link.MTU != 1400 || s.Link.UplinkMTU != 1372 {
			t.Errorf("status link %+v (%v)", s.Link, err)
		}
		udpEcho(t, c1, "")
	})
	if out := ce.Agent.Output(); strings.Count(out, "translator attached") < 3 {
		t.Errorf("want the translator attached at start, on the new device and for the MTU:\n%s", out)
	}
}
