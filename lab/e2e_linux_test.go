package lab_test

import (
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/mapt-go/mapt/lab"
	"github.com/mapt-go/mapt/mapt"
	"github.com/mapt-go/mapt/testenv"
)

// up starts the lab and waits for both CEs.
func up(t *testing.T, o lab.Options) *lab.Lab {
	t.Helper()
	o.Bin = testenv.BuildAgentAndBR(t)
	l := lab.Up(t, o)
	if err := l.WaitProvisioned(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	return l
}

// servers answer UDP on s:7 (echo), serve n bytes on s:9000 and
// swallow uploads on s:9001, recording their sha256 (startServers).
type servers struct {
	mu      sync.Mutex
	uploads []string
}

func startServers(t *testing.T, l *lab.Lab) *servers {
	srv := &servers{}
	l.S.EchoUDP("udp", ":7")
	l.S.ServeTCP("tcp", ":9000", func(c net.Conn) {
		var n int64
		fmt.Fscanf(c, "%d\n", &n)
		io.CopyN(c, zeroReader{}, n)
	})
	l.S.ServeTCP("tcp", ":9001", func(c net.Conn) {
		h := sha256.New()
		n, _ := io.Copy(h, c)
		srv.mu.Lock()
		srv.uploads = append(srv.uploads, fmt.Sprintf("%d:%x", n, h.Sum(nil)))
		srv.mu.Unlock()
	})
	return srv
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(i)
	}
	return len(p), nil
}

func udpEcho(t *testing.T, ns *testenv.NS, local string) {
	t.Helper()
	c, err := ns.Dial("udp", local, testenv.SeedServer+":7", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 64)
	for try := 0; try < 5; try++ {
		c.Write([]byte("echo"))
		c.SetReadDeadline(time.Now().Add(time.Second))
		if n, err := c.Read(buf); err == nil && string(buf[:n]) == "echo" {
			return
		}
	}
	t.Fatalf("%s: no UDP echo from s", ns.Short)
}

func wget(t *testing.T, ns *testenv.NS) {
	t.Helper()
	out := ns.MustExec("wget", "-q", "-T", "10", "-t", "2", "-O", "-", "http://"+testenv.SeedServer+"/index.html")
	if !strings.HasPrefix(out, `<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"`) {
		t.Fatalf("%s: page %q", ns.Short, out)
	}
}

// transport returns the source or destination port (ICMPv6 echo: the
// identifier) of a translated packet, and whether it has one.
func transport(p gopacket.Packet, src bool) (uint16, bool) {
	switch l := p.TransportLayer().(type) {
	case *layers.TCP:
		if src {
			return uint16(l.SrcPort), true
		}
		return uint16(l.DstPort), true
	case *layers.UDP:
		if src {
			return uint16(l.SrcPort), true
		}
		return uint16(l.DstPort), true
	}
	if e, ok := p.Layer(layers.LayerTypeICMPv6Echo).(*layers.ICMPv6Echo); ok {
		return e.Identifier, true
	}
	return 0, false
}

// mapTraffic is a capture filter for translated traffic: no DHCPv6, no
// neighbour discovery.
const mapTraffic = "ip6 and (tcp or (udp and not port 546 and not port 547) or icmp6[0] == 128 or icmp6[0] == 129)"

// TestSeedCapture checks every translated packet on the BR's CE-facing
// side: CE 11b's come from 2001:db8:ce:11b:0:c000:208:1b with ports in
// 55296-57343, CE 774's from 2001:db8:ce:774:0:c000:23b:14 with ports in
// 40960-43007, all to 64:ff9b::cb00:7138 (s through the DMR).
func TestSeedCapture(t *testing.T) {
	l := up(t, lab.Options{})
	startServers(t, l)
	capture := l.BR.Capture("eth0", mapTraffic)
	for _, c := range l.CEs {
		wget(t, c.Client)
		udpEcho(t, c.Client, "")
		c.Client.MustExec("ping", "-c", "2", "-i", "0.2", "-W", "3", testenv.SeedServer)
	}
	want := map[netip.Addr]mapt.PortRange{
		netip.MustParseAddr("2001:db8:ce:11b:0:c000:208:1b"): {First: 55296, Last: 57343},
		netip.MustParseAddr("2001:db8:ce:774:0:c000:23b:14"): {First: 40960, Last: 43007},
	}
	server := netip.MustParseAddr("64:ff9b::cb00:7138")
	seen := map[netip.Addr]map[string]int{}
	for _, p := range capture.Packets() {
		ip, ok := p.NetworkLayer().(*layers.IPv6)
		if !ok {
			continue
		}
		src, _ := netip.AddrFromSlice(ip.SrcIP)
		dst, _ := netip.AddrFromSlice(ip.DstIP)
		ce, port := src, uint16(0)
		var ok2 bool
		if dst == server { // CE -> s
			port, ok2 = transport(p, true)
		} else if src == server { // s -> CE
			ce = dst
			port, ok2 = transport(p, false)
		} else {
			t.Fatalf("packet neither to nor from s: %s -> %s", src, dst)
		}
		r, known := want[ce]
		if !known || !ok2 || port < r.First || port > r.Last {
			t.Fatalf("packet %s -> %s port %d: outside the CE's binding", src, dst, port)
		}
		if seen[ce] == nil {
			seen[ce] = map[string]int{}
		}
		proto := "icmpv6"
		if tl := p.TransportLayer(); tl != nil {
			proto = tl.LayerType().String()
		}
		seen[ce][proto]++
	}
	for ce := range want {
		if len(seen[ce]) < 3 {
			t.Fatalf("%s: saw %v, want TCP, UDP and ICMPv6", ce, seen[ce])
		}
	}
}

// TestBulkTransfer moves 16 MB each way between c1 and s, with the veth
// offloads (GRO, TSO, checksum offload) on.
func TestBulkTransfer(t *testing.T) {
	l := up(t, lab.Options{})
	srv := startServers(t, l)
	for _, ns := range []*testenv.NS{l.C1, l.CE11b, l.Switch, l.BR, l.S} {
		out := ns.MustExec("ip", "-o", "link", "show", "type", "veth")
		for _, f := range strings.Split(strings.TrimSpace(out), "\n") {
			dev := strings.TrimSuffix(strings.Fields(f)[1], ":")
			dev, _, _ = strings.Cut(dev, "@")
			ns.MustExec("ethtool", "-K", dev, "gro", "on", "tso", "on", "tx", "on", "rx", "on")
		}
	}
	const size = 16 << 20
	// s -> c1
	c, err := l.C1.Dial("tcp", "", testenv.SeedServer+":9000", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "%d\n", size)
	c.SetReadDeadline(time.Now().Add(60 * time.Second))
	h := sha256.New()
	n, err := io.Copy(h, c)
	if err != nil || n != size {
		t.Fatalf("download: %d bytes, %v", n, err)
	}
	wantSum := sha256.New()
	io.CopyN(wantSum, zeroReader{}, size)
	if fmt.Sprintf("%x", h.Sum(nil)) != fmt.Sprintf("%x", wantSum.Sum(nil)) {
		t.Fatal("download corrupted")
	}
	// c1 -> s
	c, err = l.C1.Dial("tcp", "", testenv.SeedServer+":9001", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetWriteDeadline(time.Now().Add(60 * time.Second))
	if n, err := io.CopyN(c, zeroReader{}, size); err != nil || n != size {
		t.Fatalf("upload: %d, %v", n, err)
	}
	c.Close()
	want := fmt.Sprintf("%d:%x", size, wantSum.Sum(nil))
	if !testenv.WaitFor(10*time.Second, func() bool {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		return len(srv.uploads) == 1 && srv.uploads[0] == want
	}) {
		t.Fatalf("upload: s got %v, want %s", srv.uploads, want)
	}
}

// TestMesh reaches a server behind CE 774 (a port forward to c2) from c1.
// With the FMR flag the CEs translate straight to each other (RFC 7597
// s5.3): nothing crosses the BR. Without it the BR relays (hairpin).
func TestMesh(t *testing.T) {
	for _, fmr := range []bool{true, false} {
		t.Run(fmt.Sprintf("fmr=%v", fmr), func(t *testing.T) {
			l := up(t, lab.Options{FMR: fmr})
			// The access network routes CE prefixes to their CEs, as a
			// mesh-capable one does.
			l.CE11b.Route("2001:db8:ce:774::/64", "via", testenv.SeedCE774WAN)
			l.CE774.Route("2001:db8:ce:11b::/64", "via", testenv.SeedCE11bWAN)
			// A port forward on CE 774: 192.0.2.59:41000 -> c2:8080, by
			// address (translated packets enter the stack on mapt0, with
			// --inbound wan on the WAN).
			l.CE774.MustExec("nft", "add table ip pf")
			l.CE774.MustExec("nft", "add chain ip pf pre { type nat hook prerouting priority -100; }")
			l.CE774.MustExec("nft", "add rule ip pf pre ip daddr 192.0.2.59 tcp dport 41000 dnat to 192.168.0.4:8080")
			l.C2.ServeTCP("tcp", ":8080", func(c net.Conn) { io.WriteString(c, "behind CE 774\n") })
			atBR := l.BR.Capture("eth0", "ip6 and tcp")
			at774 := l.CE774.Capture("wan", "ip6 and tcp")
			c, err := l.C1.Dial("tcp", "", "192.0.2.59:41000", 10*time.Second)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			b, err := io.ReadAll(c)
			if err != nil || string(b) != "behind CE 774\n" {
				t.Fatalf("read %q %v", b, err)
			}
			brPkts, cePkts := atBR.Packets(), at774.Packets()
			from11b := 0
			for _, p := range cePkts {
				ip := p.NetworkLayer().(*layers.IPv6)
				src, _ := netip.AddrFromSlice(ip.SrcIP)
				if fmr && src == netip.MustParseAddr("2001:db8:ce:11b:0:c000:208:1b") {
					from11b++
				}
				if !fmr && src == netip.MustParseAddr("64:ff9b::c000:208") {
					from11b++ // CE 11b's address as the BR's DMR embeds it
				}
			}
			if from11b == 0 {
				t.Fatalf("CE 774 saw no packets from CE 11b (fmr=%v): %d packets", fmr, len(cePkts))
			}
			if fmr && len(brPkts) != 0 {
				t.Fatalf("mesh: %d packets crossed the BR", len(brPkts))
			}
			if !fmr && len(brPkts) == 0 {
				t.Fatal("hub and spoke: no packets at the BR")
			}
		})
	}
}

// TestPSIDOffset6 runs the second profile: a = 6, so each CE has 63
// ranges of 32 ports. Many flows from c1 all leave from the set, across
// several ranges.
func TestPSIDOffset6(t *testing.T) {
	l := up(t, lab.Options{PSIDOffset: 6})
	startServers(t, l)
	s, err := l.Status(l.CEs[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Binding.Ports) != 63 || s.Binding.PortCount != 63*32 {
		t.Fatalf("binding: %d ranges, %d ports", len(s.Binding.Ports), s.Binding.PortCount)
	}
	ps := mapt.PortSet{PortParams: mapt.PortParams{Offset: 6, Len: 5}, PSID: s.Binding.PSID}
	capture := l.BR.Capture("eth0", "ip6 and udp and dst port 7")
	const flows = 200
	for i := 0; i < flows; i++ {
		udpEcho(t, l.C1, fmt.Sprintf("192.168.0.4:%d", 20000+i))
	}
	ranges := map[int]bool{}
	n := 0
	for _, p := range capture.Packets() {
		port, _ := transport(p, true)
		if !ps.Contains(port) {
			t.Fatalf("source port %d outside the port set %s", port, ps)
		}
		ranges[int(port)>>10] = true
		n++
	}
	if n < flows || len(ranges) < 5 {
		t.Fatalf("%d packets over %d ranges", n, len(ranges))
	}
	t.Logf("%d flows used %d of 63 ranges", flows, len(ranges))
}

// TestLeaseLifecycle renews every 2 s under traffic, then changes the rule
// at the ISP (psid-offset 0 -> 6): the CEs pick it up at their next
// renewal, the BR from the same file, and traffic goes on.
func TestLeaseLifecycle(t *testing.T) {
	l := up(t, lab.Options{RenewTimer: 2})
	startServers(t, l)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		udpEcho(t, l.C1, "")
		time.Sleep(100 * time.Millisecond)
	}
	if out := l.CEs[0].Agent.Output(); !strings.Contains(out, "renewed") {
		t.Fatalf("no renewal in 5 s with T1 = 2 s:\n%s", out)
	}
	if out := l.CEs[0].Agent.Output(); strings.Count(out, "binding applied") != 1 {
		t.Fatalf("renewals re-applied the binding:\n%s", out)
	}
	l.ChangeDomain(t, lab.Options{PSIDOffset: 6})
	for _, c := range l.CEs {
		if !testenv.WaitFor(10*time.Second, func() bool {
			s, err := l.Status(c)
			return err == nil && s.Binding != nil && s.Binding.PSIDOffset == 6
		}) {
			t.Fatalf("%s did not pick up the new rule:\n%s", c.Name, c.Agent.Output())
		}
	}
	s, _ := l.Status(l.CEs[1])
	if len(s.Binding.Ports) != 63 || s.Binding.IPv4 != "192.0.2.59/32" {
		t.Fatalf("new binding %+v", s.Binding)
	}
	wget(t, l.C1)
	wget(t, l.C2)
	udpEcho(t, l.C2, "")
}

// TestFragmentedUDP sends a 3000-byte datagram from c1: c1 fragments it,
// the CE fragments again to its uplink MTU (WAN - 28), and every fragment,
// 28 bytes longer once translated, still fits the WAN and the BR's links.
func TestFragmentedUDP(t *testing.T) {
	l := up(t, lab.Options{})
	sink := l.S.ListenPacket("udp", ":9999")
	c, err := l.C1.Dial("udp", "", testenv.SeedServer+":9999", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, 3000)
	for i := range payload {
		payload[i] = byte(i)
	}
	buf := make([]byte, 4000)
	for try := 0; try < 3; try++ {
		c.Write(payload)
		sink.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, _, err := sink.ReadFrom(buf)
		if err == nil {
			if n != len(payload) || string(buf[:n]) != string(payload) {
				t.Fatalf("s got %d bytes, corrupted or cut", n)
			}
			return
		}
	}
	s, _ := l.Status(l.CEs[0])
	t.Fatalf("the 3000-byte datagram never reached s; CE counters %v", s.Counters)
}
