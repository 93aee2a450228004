package lab_test

// End-to-end tests of MAP semantics at the edges and of RFC 7915 paths
// that need the stack: shared-address mesh, CEs that own a prefix, every
// transport protocol, lowest-ipv6-mtu, Packet Too Big from an access
// router, and a BR with strict reverse-path filtering. All in static mode
// (no Kea): br run and ce-agent run in the seed network or a variant.

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/gopacket/layers"

	"github.com/mapt-go/mapt/agent"
	"github.com/mapt-go/mapt/domainfile/domaintest"
	"github.com/mapt-go/mapt/testenv"
)

// domainYAML is a domain file for the seed's BR with the given rules
// (YAML list items, indented for the rules: key).
func domainYAML(rules string, br ...string) string {
	return "br:\n  ipv6-interface: eth0\n  ipv4-interface: eth1\n  metrics: \"off\"\n" + strings.Join(br, "") +
		"domains:\n" + domaintest.Domain("test", domaintest.DMR, rules)
}

// seedCE11b is the seed with br running the seed's rule (brKeys: more
// lines of its br section) and CE 11b bound in static mode with the
// extra ce-agent flags; its tests capture with tcpdump.
func seedCE11b(t *testing.T, brKeys string, ceFlags ...string) *testenv.Seed {
	t.Helper()
	testenv.Require(t, "ip", "nft", "tcpdump")
	bin := testenv.BuildAgentAndBR(t)
	seed := testenv.NewSeed(t)
	dir := seed.Lab.Dir()
	seed.RouteDelegated("2001:db8:ce:11b::/64", testenv.SeedCE11bWAN)
	startBR(t, bin, seed.BR, dir, domainYAML(seedRule(false), brKeys))
	startCE(t, bin, seed.CE11b, dir, "2001:db8:ce:11b::/64", ceFlags...)
	return seed
}

// seedRule is the seed's rule as a domain file entry; fmr sets the F flag.
func seedRule(fmr bool) string { return domaintest.SeedRuleFMR(0, fmr) }

// startBR runs br with the domain file in ns and waits until it runs.
func startBR(t *testing.T, bin string, ns *testenv.NS, dir, yaml string) *testenv.Proc {
	t.Helper()
	path := filepath.Join(dir, "domain.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	p := ns.Start(filepath.Join(bin, "br"), "run", "--config", path)
	if !testenv.WaitFor(20*time.Second, func() bool { return strings.Contains(p.Output(), "br running") || p.Exited() }) || p.Exited() {
		t.Fatalf("br did not start:\n%s", p.Output())
	}
	return p
}

// startCE runs ce-agent in static mode with the domain file's rules and
// waits for the binding.
func startCE(t *testing.T, bin string, ns *testenv.NS, dir, prefix string, extra ...string) *agent.Status {
	t.Helper()
	return runCE(t, bin, ns, dir, append([]string{"--domain", filepath.Join(dir, "domain.yaml"), "--prefix", prefix}, extra...)...)
}

// runCE runs `ce-agent run` on ns's wan with args, its state and status
// socket in dir, and waits for it to be bound.
func runCE(t *testing.T, bin string, ns *testenv.NS, dir string, args ...string) *agent.Status {
	t.Helper()
	sock := filepath.Join(dir, ns.Short+".sock")
	p := ns.Start(append([]string{filepath.Join(bin, "ce-agent"), "run", "--wan", "wan",
		"--state-dir", filepath.Join(dir, ns.Short), "--status-socket", sock}, args...)...)
	var s *agent.Status
	// Generous: under TCG (the kernel matrix) loading the translator alone
	// takes seconds, more on a busy host.
	if !testenv.WaitFor(2*time.Minute, func() bool {
		var err error
		s, err = agent.ReadStatus(sock)
		return err == nil && s.State == "bound" || p.Exited()
	}) || p.Exited() {
		t.Fatalf("%s did not bind:\n%s", ns.Short, p.Output())
	}
	return s
}

// serveTCP answers one line on every connection with the remote address
// it sees, from ns at addr.
func serveTCP(t *testing.T, ns *testenv.NS, addr string) {
	t.Helper()
	l := ns.ServeTCP("tcp4", addr, func(c net.Conn) { fmt.Fprintf(c, "%s\n", c.RemoteAddr()) })
	t.Cleanup(func() { l.Close() })
}

// whoami connects from ns to addr and returns the remote address the
// server saw.
func whoami(t *testing.T, ns *testenv.NS, addr string) (netip.AddrPort, error) {
	t.Helper()
	var last error
	for try := 0; try < 3; try++ {
		c, err := ns.Dial("tcp4", "", addr, 3*time.Second)
		if err != nil {
			last = err
			continue
		}
		c.SetDeadline(time.Now().Add(3 * time.Second))
		b, err := io.ReadAll(c)
		c.Close()
		if err != nil {
			last = err
			continue
		}
		return netip.ParseAddrPort(strings.TrimSpace(string(b)))
	}
	return netip.AddrPort{}, last
}

// TestSharedAddressMesh: two CEs share 192.0.2.8 with PSIDs 0 and 1 (RFC
// 7599 s8.1). A LAN host behind A connecting to 192.0.2.8 and a port of
// B's set reaches B (directly with the FMR, through the BR's hairpin
// without it), which sees it come from the mesh alias; a port of A's own
// set stays A's (the router's own services keep working).
func TestSharedAddressMesh(t *testing.T) {
	testenv.Require(t, "ip", "nft")
	bin := testenv.BuildAgentAndBR(t)
	for _, fmr := range []bool{true, false} {
		t.Run(fmt.Sprintf("fmr=%v", fmr), func(t *testing.T) {
			seed := testenv.NewSeed(t)
			dir := seed.Lab.Dir()
			seed.RouteDelegated("2001:db8:ce:100::/64", testenv.SeedCE11bWAN)
			seed.RouteDelegated("2001:db8:ce:101::/64", testenv.SeedCE774WAN)
			startBR(t, bin, seed.BR, dir, domainYAML(seedRule(fmr)))
			a := startCE(t, bin, seed.CE11b, dir, "2001:db8:ce:100::/64")
			b := startCE(t, bin, seed.CE774, dir, "2001:db8:ce:101::/64")
			if a.Binding.IPv4 != "192.0.2.8/32" || b.Binding.IPv4 != "192.0.2.8/32" || a.Binding.PSID == b.Binding.PSID {
				t.Fatalf("bindings %+v and %+v: want one address, two PSIDs", a.Binding, b.Binding)
			}
			// B's own service on a port of B's set (PSID 1: 2048-4095),
			// A's on one of A's (PSID 0: 1-2047).
			serveTCP(t, seed.CE774, ":3000")
			serveTCP(t, seed.CE11b, ":1500")
			got, err := whoami(t, seed.C1, "192.0.2.8:3000")
			if err != nil {
				t.Fatalf("c1 (behind A) to 192.0.2.8:3000 (B's port): %v", err)
			}
			if got.Addr() != netip.MustParseAddr("192.0.0.7") || got.Port() >= 2048 {
				t.Errorf("B saw A's connection from %s: want the mesh alias 192.0.0.7 and a port of A's set (0-2047)", got)
			}
			if got, err = whoami(t, seed.C1, "192.0.2.8:1500"); err != nil || got.Addr() != netip.MustParseAddr("192.168.0.4") {
				t.Errorf("c1 to its own router's service on 192.0.2.8:1500: %v %v (want it local, from 192.168.0.4)", got, err)
			}
			if got, err = whoami(t, seed.C2, "192.0.2.8:1500"); err != nil || got.Addr() != netip.MustParseAddr("192.0.0.7") || got.Port() < 2048 {
				t.Errorf("c2 (behind B) to 192.0.2.8:1500 (A's port): %v %v", got, err)
			}
		})
	}
}

// TestPrefixCE: a CE that owns an IPv4 prefix (EA + r < 32, RFC 7597
// s5.2): LAN hosts that hold an address of it pass without NAT, private
// LAN addresses are NAPTed into it and spread over its addresses, and
// packets to any address of it reach the LAN.
func TestPrefixCE(t *testing.T) {
	testenv.Require(t, "ip", "nft", "ping")
	bin := testenv.BuildAgentAndBR(t)
	seed := testenv.NewSeed(t)
	dir := seed.Lab.Dir()
	// 2001:db8:cf::/48 + 5 EA bits: /53 end-user prefixes, a /29 of
	// 198.51.100.0/24 each. 2001:db8:cf:1800::/53 has EA 3: .24/29.
	rule := "      - ipv6-prefix: 2001:db8:cf::/48\n        ipv4-prefix: 198.51.100.0/24\n        ea-len: 5\n"
	seed.RouteDelegated("2001:db8:cf:1800::/53", testenv.SeedCE774WAN)
	seed.S.Route("198.51.100.0/24", "via", "203.0.113.1")
	startBR(t, bin, seed.BR, dir, domainYAML(rule))
	s := startCE(t, bin, seed.CE774, dir, "2001:db8:cf:1800::/53")
	if s.Binding.IPv4 != "198.51.100.24/29" {
		t.Fatalf("binding %+v: want 198.51.100.24/29", s.Binding)
	}
	// A LAN host with an address of the prefix, routed to the LAN by the
	// CE (as an operator assigns them; openwrt/README.md).
	seed.C2.Addr("eth0", "198.51.100.27/32")
	seed.CE774.Route("198.51.100.27/32", "dev", "lan")
	for i := 10; i < 18; i++ {
		seed.C2.Addr("eth0", fmt.Sprintf("192.168.0.%d/24", i))
	}
	serveTCP(t, seed.S, ":7000")
	sources := map[netip.Addr]bool{}
	for i := 10; i < 18; i++ {
		c, err := seed.C2.Dial("tcp4", fmt.Sprintf("192.168.0.%d:0", i), testenv.SeedServer+":7000", 3*time.Second)
		if err != nil {
			t.Fatalf("from 192.168.0.%d: %v", i, err)
		}
		b, _ := io.ReadAll(c)
		c.Close()
		got, err := netip.ParseAddrPort(strings.TrimSpace(string(b)))
		if err != nil || !netip.MustParsePrefix("198.51.100.24/29").Contains(got.Addr()) {
			t.Fatalf("from 192.168.0.%d the server saw %q: want an address of 198.51.100.24/29", i, b)
		}
		sources[got.Addr()] = true
	}
	if len(sources) < 2 {
		t.Errorf("eight private hosts all NAPTed to %v: want them spread over the prefix", sources)
	}
	c, err := seed.C2.Dial("tcp4", "198.51.100.27:0", testenv.SeedServer+":7000", 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(c)
	c.Close()
	if got, err := netip.ParseAddrPort(strings.TrimSpace(string(b))); err != nil || got.Addr() != netip.MustParseAddr("198.51.100.27") {
		t.Errorf("a LAN host holding 198.51.100.27 was seen as %q: want no NAT", b)
	}
	if out, err := seed.S.Exec("ping", "-c", "2", "-i", "0.3", "-W", "2", "198.51.100.27"); err != nil {
		t.Errorf("ping from the Internet to 198.51.100.27 in the prefix: %v\n%s", err, out)
	}
}

// rawListen receives one protocol's packets at s and reports each
// source address and transport bytes.
type rawPacket struct {
	src  netip.Addr
	body []byte
}

func rawListen(t *testing.T, ns *testenv.NS, proto int) <-chan rawPacket {
	t.Helper()
	var c *net.IPConn
	if err := ns.Do(func() (err error) {
		c, err = net.ListenIP(fmt.Sprintf("ip4:%d", proto), &net.IPAddr{IP: net.ParseIP(testenv.SeedServer)})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	out := make(chan rawPacket, 16)
	go testenv.EachPacket(c, func(b []byte, from net.Addr) {
		a, _ := netip.AddrFromSlice(from.(*net.IPAddr).IP.To4())
		out <- rawPacket{a, append([]byte(nil), b...)}
	})
	return out
}

// rawSend sends one packet of a protocol from ns to s, body's checksum at
// csumOff (>= 0) computed for the pseudo-header with src.
func rawSend(t *testing.T, ns *testenv.NS, proto int, src string, body []byte, csumOff int) {
	t.Helper()
	if csumOff >= 0 {
		setChecksum(body, csumOff, netip.MustParseAddr(src), netip.MustParseAddr(testenv.SeedServer), proto)
	}
	err := ns.Do(func() error {
		c, err := net.DialIP(fmt.Sprintf("ip4:%d", proto), &net.IPAddr{IP: net.ParseIP(src)}, &net.IPAddr{IP: net.ParseIP(testenv.SeedServer)})
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write(body)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func setChecksum(b []byte, off int, src, dst netip.Addr, proto int) {
	b[off], b[off+1] = 0, 0
	ph := append(src.AsSlice(), dst.AsSlice()...)
	ph = append(ph, 0, byte(proto), byte(len(b)>>8), byte(len(b)))
	binary.BigEndian.PutUint16(b[off:], ^onesSum(ph, b))
}

func onesSum(bs ...[]byte) uint16 {
	var s uint32
	for _, b := range bs {
		for i := 0; i+1 < len(b); i += 2 {
			s += uint32(b[i])<<8 | uint32(b[i+1])
		}
		if len(b)%2 == 1 {
			s += uint32(b[len(b)-1]) << 8
		}
	}
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

// TestAllProtocolsLab: RFC 7915 s5.1 "all transport protocols are
// translated", through NAT, CE and BR: UDP-Lite, SCTP and DCCP with ports
// from a shared address, and also GRE and ESP from a full address (a 1:1
// rule, k = 0); from a shared address GRE is dropped and counted, since
// no port says which CE a reply is for.
func TestAllProtocolsLab(t *testing.T) {
	testenv.Require(t, "ip", "nft")
	bin := testenv.BuildAgentAndBR(t)
	seed := testenv.NewSeed(t)
	dir := seed.Lab.Dir()
	rules := seedRule(false) + "      - ipv6-prefix: 2001:db8:12:3400::/56\n        ipv4-prefix: 198.51.100.18/32\n        ea-len: 0\n"
	seed.RouteDelegated("2001:db8:ce:11b::/64", testenv.SeedCE11bWAN)
	seed.RouteDelegated("2001:db8:12:3400::/56", testenv.SeedCE774WAN)
	seed.S.Route("198.51.100.18/32", "via", "203.0.113.1")
	startBR(t, bin, seed.BR, dir, domainYAML(rules))
	shared := startCE(t, bin, seed.CE11b, dir, "2001:db8:ce:11b::/64")
	full := startCE(t, bin, seed.CE774, dir, "2001:db8:12:3400::/56")
	if full.Binding.IPv4 != "198.51.100.18/32" || shared.Binding.IPv4 != "192.0.2.8/32" {
		t.Fatalf("bindings %v %v", full.Binding.IPv4, shared.Binding.IPv4)
	}
	// Conntrack checks UDP-Lite checksums with UDP's protocol number in
	// the pseudo-header, RFC 3828 (and Linux's own UDP-Lite) with 136:
	// the CEs' conntrack would call our packets invalid. The server
	// checks the checksum instead.
	for _, ns := range []*testenv.NS{seed.CE11b, seed.CE774} {
		ns.Sysctl("net.netfilter.nf_conntrack_checksum", "0")
	}
	body := func(p int, sport uint16, n int) []byte {
		b := make([]byte, n)
		binary.BigEndian.PutUint16(b, sport)
		binary.BigEndian.PutUint16(b[2:], 5000)
		for i := 4; i < n; i++ {
			b[i] = byte(i)
		}
		switch p {
		case syscall.IPPROTO_UDPLITE:
			b[4], b[5] = 0, 0 // checksum coverage: the whole datagram
		case syscall.IPPROTO_SCTP:
			// An INIT chunk (conntrack wants one first) after the
			// common header, verification tag 0, and the CRC32c.
			chunk := []byte{1, 0, 0, 20, 1, 2, 3, 4, 0, 0, 0xff, 0xff, 0, 1, 0, 1, 0, 0, 0, 1}
			b = append(b[:12], chunk...)
			binary.BigEndian.PutUint32(b[4:], 0)
			binary.BigEndian.PutUint32(b[8:], 0)
			binary.LittleEndian.PutUint32(b[8:], crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
		case syscall.IPPROTO_DCCP:
			// Data offset 4 words, CsCov 0 (all), a DCCP-Data packet
			// (type 2) with 48-bit sequence numbers (X).
			b[4], b[5], b[8] = 4, 0, 2<<1|1
		}
		return b
	}
	type proto struct {
		name         string
		num, hlen    int
		csumOff      int
		ports, check bool
	}
	for _, p := range []proto{
		{"udplite", syscall.IPPROTO_UDPLITE, 8, 6, true, true},
		{"sctp", syscall.IPPROTO_SCTP, 12, -1, true, false},
		{"dccp", syscall.IPPROTO_DCCP, 16, 6, true, false},
		{"gre", syscall.IPPROTO_GRE, 4, -1, false, false},
		{"esp", syscall.IPPROTO_ESP, 8, -1, false, false},
	} {
		t.Run(p.name, func(t *testing.T) {
			got := rawListen(t, seed.S, p.num)
			recv := func(want netip.Addr) (rawPacket, bool) {
				select {
				case r := <-got:
					return r, r.src == want
				case <-time.After(3 * time.Second):
					return rawPacket{}, false
				}
			}
			// From the full address: every protocol.
			rawSend(t, seed.C2, p.num, "192.168.0.4", body(p.num, 40000, p.hlen+40), p.csumOff)
			r, ok := recv(netip.MustParseAddr("198.51.100.18"))
			if !ok {
				t.Fatalf("from the full-address CE: nothing from 198.51.100.18 (got %v)", r.src)
			}
			if p.check && onesSum(pseudo4(r.src, p.num, len(r.body)), r.body) != 0xffff {
				t.Errorf("from the full-address CE: checksum wrong at the server")
			}
			if p.num == syscall.IPPROTO_SCTP && !sctpCRCOK(r.body) {
				t.Errorf("from the full-address CE: SCTP CRC32c wrong at the server")
			}
			// From the shared address: with a port of the CE's set.
			rawSend(t, seed.C1, p.num, "192.168.0.4", body(p.num, 55300, p.hlen+40), p.csumOff)
			r, ok = recv(netip.MustParseAddr("192.0.2.8"))
			if !p.ports {
				if ok {
					t.Fatalf("from the shared address: %s arrived, want it dropped", p.name)
				}
				st, err := agent.ReadStatus(filepath.Join(dir, "ce11b.sock"))
				if err != nil || st.Counters["proto"] == 0 {
					t.Errorf("shared CE counters %v (%v): want proto", st.Counters, err)
				}
				return
			}
			if !ok {
				t.Fatalf("from the shared CE: nothing from 192.0.2.8")
			}
			if sp := binary.BigEndian.Uint16(r.body); sp < 55296 || sp > 57343 {
				t.Errorf("from the shared CE: source port %d outside 55296-57343", sp)
			}
			if p.check && onesSum(pseudo4(r.src, p.num, len(r.body)), r.body) != 0xffff {
				t.Errorf("from the shared CE: checksum wrong at the server")
			}
		})
	}
}

func sctpCRCOK(b []byte) bool {
	if len(b) < 12 {
		return false
	}
	c := append([]byte(nil), b...)
	want := binary.LittleEndian.Uint32(c[8:])
	binary.LittleEndian.PutUint32(c[8:], 0)
	return crc32.Checksum(c, crc32.MakeTable(crc32.Castagnoli)) == want
}

func pseudo4(src netip.Addr, proto, n int) []byte {
	b := append(src.AsSlice(), netip.MustParseAddr(testenv.SeedServer).AsSlice()...)
	return append(b, 0, byte(proto), byte(n>>8), byte(n))
}

// TestLowestIPv6MTULab: with the default lowest-ipv6-mtu (1280), a
// 1400-byte UDP datagram from the Internet with DF clear reaches the CE as
// IPv6 fragments of at most 1280 bytes (RFC 7915 s4.1), and the LAN host
// gets it whole.
func TestLowestIPv6MTULab(t *testing.T) {
	seed := seedCE11b(t, "")
	// s answers every datagram with 1400 bytes, DF clear.
	srv := seed.S.ListenPacket("udp4", ":7")
	t.Cleanup(func() { srv.Close() })
	raw, err := srv.(*net.UDPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	raw.Control(func(fd uintptr) {
		err = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_MTU_DISCOVER, syscall.IP_PMTUDISC_DONT)
	})
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 1400-28)
	go testenv.EachPacket(srv, func(_ []byte, from net.Addr) { srv.WriteTo(big, from) })
	capture := seed.CE11b.Capture("wan", "ip6 and dst host 2001:db8:ce:11b:0:c000:208:1b")
	c, err := seed.C1.Dial("udp4", "", testenv.SeedServer+":7", 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := make([]byte, 2048)
	n := 0
	for try := 0; try < 3 && n != len(big); try++ {
		c.Write([]byte("x"))
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, _ = c.Read(got)
	}
	if n != len(big) {
		t.Fatalf("the LAN host got %d bytes, want %d", n, len(big))
	}
	frags := 0
	for _, p := range capture.Packets() {
		ip, ok := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		if !ok {
			continue
		}
		if size := 40 + int(ip.Length); size > 1280 {
			t.Errorf("an IPv6 packet of %d bytes reached the CE: want at most 1280", size)
		}
		if p.Layer(layers.LayerTypeIPv6Fragment) != nil {
			frags++
		}
	}
	if frags < 2 {
		t.Errorf("%d IPv6 fragments at the CE, want the datagram in fragments", frags)
	}
}

// TestPTBFromAccessRouter: an IPv6 router between CE and BR with a
// smaller MTU (1400) sends Packet Too Big for a packet from the Internet;
// the BR translates it (RFC 7915 s5.2: MTU - 20) from its ICMP source
// (RFC 6791), and the IPv4 server's path MTU to the CE drops to 1380.
//
//	c1 -- CE (wan) -- (down, MTU 1400) rtr (up) -- (eth0) BR (eth1) -- s
func TestPTBFromAccessRouter(t *testing.T) {
	testenv.Require(t, "ip", "nft", "ping")
	bin := testenv.BuildAgentAndBR(t)
	l := testenv.New(t)
	c1, ce, rtr, br, s := l.NS("c1"), l.NS("ce"), l.NS("rtr"), l.NS("br"), l.NS("s")
	l.Veth(c1, "eth0", ce, "lan")
	l.Veth(ce, "wan", rtr, "down")
	l.Veth(rtr, "up", br, "eth0")
	l.Veth(br, "eth1", s, "eth0")
	c1.Addr("eth0", "192.168.0.4/24")
	c1.Route("default", "via", "192.168.0.1")
	ce.Forwarding()
	ce.Addr("lan", "192.168.0.1/24")
	ce.MustExec("ip", "link", "set", "dev", "wan", "mtu", "1400")
	ce.Addr("wan", "2001:db8:7::2/64")
	ce.Route("default", "via", "2001:db8:7::1")
	rtr.Forwarding()
	rtr.MustExec("ip", "link", "set", "dev", "down", "mtu", "1400")
	rtr.Addr("down", "2001:db8:7::1/64")
	rtr.Addr("up", "2001:db8:6::2/64")
	rtr.Route("2001:db8:ce:11b::/64", "via", "2001:db8:7::2")
	rtr.Route("default", "via", "2001:db8:6::1")
	br.Forwarding()
	br.Addr("eth0", "2001:db8:6::1/64")
	br.Addr("eth1", "203.0.113.1/24")
	br.Route("2001:db8:ce::/51", "via", "2001:db8:6::2")
	s.Addr("eth0", testenv.SeedServer+"/24")
	s.Route("192.0.2.0/24", "via", "203.0.113.1")
	startBR(t, bin, br, l.Dir(), domainYAML(seedRule(false), "  icmp-source: 203.0.113.1\n"))
	startCE(t, bin, ce, l.Dir(), "2001:db8:ce:11b::/64")
	// An echo request with DF from s to the CE (its identifier in the
	// CE's set, so the BR maps it there): 1450 bytes, 1470 as IPv6,
	// too big for the router's 1400-byte link.
	out, _ := s.Exec("ping", "-c", "2", "-i", "0.5", "-W", "2", "-M", "do", "-s", "1422", "-e", "55300", "192.0.2.8")
	if !strings.Contains(out, "From 203.0.113.1") || !strings.Contains(out, "mtu = 1380") {
		t.Errorf("ping with DF: want Frag needed from the BR's ICMP source with mtu 1380:\n%s", out)
	}
	if route := s.MustExec("ip", "-4", "route", "get", "192.0.2.8"); !strings.Contains(route, "mtu 1380") {
		t.Errorf("s's route to the CE after the error: %s (want mtu 1380)", route)
	}
}

// TestBRStrictRPFilter: a BR host with strict reverse-path filtering
// (rp_filter = 1) would drop every translated CE packet while counting it
// as translated; br run sets loose mode on its IPv6 side and says so, and
// traffic flows.
func TestBRStrictRPFilter(t *testing.T) {
	testenv.Require(t, "ip", "nft", "ping")
	bin := testenv.BuildAgentAndBR(t)
	seed := testenv.NewSeed(t)
	dir := seed.Lab.Dir()
	seed.BR.Sysctl("net.ipv4.conf.all.rp_filter", "1")
	seed.BR.Sysctl("net.ipv4.conf.eth0.rp_filter", "1")
	seed.RouteDelegated("2001:db8:ce:11b::/64", testenv.SeedCE11bWAN)
	br := startBR(t, bin, seed.BR, dir, domainYAML(seedRule(false)))
	if !strings.Contains(br.Output(), "net.ipv4.conf.eth0.rp_filter") {
		t.Errorf("br did not say it changed rp_filter:\n%s", br.Output())
	}
	startCE(t, bin, seed.CE11b, dir, "2001:db8:ce:11b::/64")
	if out, err := seed.C1.Exec("ping", "-c", "2", "-i", "0.3", "-W", "2", testenv.SeedServer); err != nil {
		t.Fatalf("ping through a BR with strict rp_filter: %v\n%s\n%s", err, out, br.Output())
	}
}
