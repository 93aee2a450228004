package dataplane

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mapt-go/mapt/mapt"
	"github.com/mapt-go/mapt/testenv"
)

// lab is the static MAP-T path: client -- CE -- BR -- server.
//
//	client 192.0.2.59 (the CE's address; ephemeral ports = its port set)
//	  | lan0
//	CE: mapt0 (TUN, MTU 1480, IPv4 default route) --4->6--> wan0
//	  | wan0 2001:db8:f::2           eth0 2001:db8:f::1
//	BR: eth0 (IPv6 side) 6->4 / eth1 (IPv4 side) 4->6
//	  | eth1 198.51.100.1
//	server 198.51.100.7
type lab struct {
	client, ce, br, server *testenv.NS
	ceT, brT               *Translator
}

// The corrected CE 774 of Jool's tutorial (ARCHITECTURE.md, Conventions
// and reference vectors): 2001:db8:ce:774::/64 under
// {2001:db8:ce::/51, 192.0.2.0/24, EA 13, a=0} is 192.0.2.59, PSID 20,
// ports 40960-43007.
var (
	labRule = mapt.MustParseRule("2001:db8:ce::/51,192.0.2.0/24,13,a=0,fmr")
	labEUP  = netip.MustParsePrefix("2001:db8:ce:774::/64")
	labDMR  = netip.MustParsePrefix("64:ff9b::/96")
)

func newLab(t *testing.T, mode AttachMode) *lab { return newLabBR(t, mode, nil) }

// newLabBR is newLab with the BR's configuration changed by br.
func newLabBR(t *testing.T, mode AttachMode, br func(*Config)) *lab {
	t.Helper()
	testenv.Require(t, "ip", "ethtool", "ping")
	b := mustDerive(labRule, labEUP)
	if got := b.IPv4.Addr().String(); got != "192.0.2.59" || b.PortSet.Range(0).First != 40960 {
		t.Fatalf("lab binding %v %v: not the corrected CE 774", b.IPv4, b.PortSet)
	}
	l := testenv.New(t)
	x := &lab{client: l.NS("client"), ce: l.NS("ce"), br: l.NS("br"), server: l.NS("server")}
	l.Veth(x.client, "eth0", x.ce, "lan0")
	l.Veth(x.ce, "wan0", x.br, "eth0")
	l.Veth(x.br, "eth1", x.server, "eth0")

	x.client.Addr("eth0", "192.0.2.59/32")
	x.client.MustExec("ip", "link", "set", "dev", "eth0", "mtu", "1480")
	x.client.Route("10.9.0.1", "dev", "eth0")
	x.client.Route("default", "via", "10.9.0.1", "dev", "eth0")
	r := b.PortSet.Range(0)
	x.client.Sysctl("net.ipv4.ip_local_port_range", fmt.Sprintf("%d %d", r.First, r.Last))

	x.ce.Forwarding()
	x.ce.Addr("lan0", "10.9.0.1/24")
	x.ce.Route("192.0.2.59/32", "dev", "lan0")
	x.ce.MustExec("ip", "tuntap", "add", "dev", "mapt0", "mode", "tun")
	x.ce.MustExec("ip", "link", "set", "dev", "mapt0", "mtu", "1480", "up")
	x.ce.Route("default", "dev", "mapt0")
	x.ce.Addr("wan0", "2001:db8:f::2/64")
	x.ce.Route("default", "via", "2001:db8:f::1")

	x.br.Forwarding()
	x.br.Sysctl("net.ipv4.conf.all.rp_filter", "0")
	x.br.Sysctl("net.ipv4.conf.eth0.rp_filter", "0")
	x.br.Addr("eth0", "2001:db8:f::1/64")
	x.br.Addr("eth1", "198.51.100.1/24")
	x.br.Route("2001:db8:ce::/51", "via", "2001:db8:f::2")
	// What the BR's own stack sends to the DMR or to CE addresses goes
	// through br_local on this device.
	x.br.MustExec("ip", "tuntap", "add", "dev", "brtun0", "mode", "tun")
	x.br.MustExec("ip", "link", "set", "dev", "brtun0", "up")
	x.br.Route(labDMR.String(), "dev", "brtun0")
	x.br.Route("192.0.2.0/24", "dev", "brtun0")

	x.server.Addr("eth0", "198.51.100.7/24")
	x.server.Route("default", "via", "198.51.100.1")

	// Offloads on: veth TSO/GSO are on by default; GRO makes the
	// receiving side build large packets as well.
	for _, d := range []struct {
		ns  *testenv.NS
		dev string
	}{{x.client, "eth0"}, {x.ce, "lan0"}, {x.ce, "wan0"}, {x.br, "eth0"}, {x.br, "eth1"}, {x.server, "eth0"}} {
		d.ns.MustExec("ethtool", "-K", d.dev, "gro", "on", "tso", "on", "gso", "on")
	}

	err := x.ce.Do(func() error {
		var err error
		x.ceT, err = Load(Config{Mode: CE, Binding: b, DMR: labDMR, FMRs: []mapt.Rule{labRule}})
		if err != nil {
			return err
		}
		return x.ceT.AttachCE("mapt0", "wan0", mode)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.ceT.Close() })
	err = x.br.Do(func() error {
		var err error
		cfg := Config{Mode: BR, DMR: labDMR, FMRs: []mapt.Rule{labRule}}
		if br != nil {
			br(&cfg)
		}
		x.brT, err = Load(cfg)
		if err != nil {
			return err
		}
		return x.brT.AttachBR("eth0", "eth1", "brtun0", mode)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.brT.Close() })
	return x
}

// drops sums the counters that are not translations or passes.
func drops(t *testing.T, tr *Translator) map[string]uint64 {
	t.Helper()
	c, err := tr.Counters()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for k, v := range c {
		switch k {
		case "ce_4to6", "ce_6to4", "br_4to6", "br_6to4", "br_hairpin", "pass", "br_via_stack":
		default:
			if v > 0 {
				out[k] = v
			}
		}
	}
	return out
}

// TestNetnsCEBR sends ping, UDP and bulk TCP both ways through a CE and a
// BR in namespaces, with veth offloads on, in both attach modes.
//
// With the BR's fast path on (the "fast path" cases), the same must hold while
// the BR forwards most translated packets itself: one TTL decrement, PMTU
// discovery, Time Exceeded, fragments and errors all as through its stack.
// Both attach modes carry the fast path; TCX only where the kernel has it
// (6.6+: TestAttachModes checks that asking for it before fails clearly).
func TestNetnsCEBR(t *testing.T) {
	type mode struct {
		name string
		mode AttachMode
		fast bool
	}
	modes := []mode{{"clsact", AttachClsact, false}, {"clsact fast path", AttachClsact, true}}
	if testenv.HaveTCX(t) {
		modes = append(modes, mode{"tcx", AttachTCX, false}, mode{"tcx fast path", AttachTCX, true})
	}
	for _, c := range modes {
		mode := c.mode
		t.Run(c.name, func(t *testing.T) {
			x := newLabBR(t, mode, func(cfg *Config) { cfg.FastPath = c.fast })
			if x.ceT.AttachMode() != mode || x.brT.AttachMode() != mode {
				t.Fatalf("attach modes %q %q, want %q", x.ceT.AttachMode(), x.brT.AttachMode(), mode)
			}

			// ICMP echo with an identifier inside the port set. TTL 62: the
			// BR and the CE each decrement once (64 -> 62), no more.
			out := x.client.MustExec("ping", "-c", "3", "-i", "0.2", "-W", "2", "-e", "41000", "198.51.100.7")
			if !strings.Contains(out, "3 received") || !strings.Contains(out, "ttl=62") {
				t.Fatalf("ping:\n%s", out)
			}

			t.Run("udp", func(t *testing.T) { udpEcho(t, x) })
			t.Run("mtu", func(t *testing.T) { mtu(t, x) })
			t.Run("udp fragments", func(t *testing.T) { udpFragments(t, x) })
			t.Run("icmp errors", func(t *testing.T) { portUnreachable(t, x) })
			t.Run("br own errors", func(t *testing.T) { brOwnErrors(t, x) })
			t.Run("tcp bulk", func(t *testing.T) { tcpBulk(t, x, 4<<20) })

			ce, _ := x.ceT.Counters()
			br, _ := x.brT.Counters()
			for _, k := range []string{"ce_4to6", "ce_6to4"} {
				if ce[k] == 0 {
					t.Errorf("ce counter %s = 0", k)
				}
			}
			for _, k := range []string{"br_4to6", "br_6to4"} {
				if br[k] == 0 {
					t.Errorf("br counter %s = 0", k)
				}
			}
			if d := drops(t, x.ceT); len(d) > 0 {
				t.Errorf("ce drops: %v", d)
			}
			// brOwnErrors' TTL-2 ping is the one packet whose hop
			// limit ends at the BR: counted, and answered by the stack.
			d := drops(t, x.brT)
			if d["ttl_expired"] != 1 {
				t.Errorf("br ttl_expired = %d, want 1 (the TTL-2 ping)", d["ttl_expired"])
			}
			delete(d, "ttl_expired")
			fast := d["br_fast"]
			delete(d, "br_fast")
			if len(d) > 0 {
				t.Errorf("br drops: %v", d)
			}
			// The bulk TCP alone is ~200 GSO packets each way.
			if c.fast && fast < 100 || !c.fast && fast != 0 {
				t.Errorf("br_fast = %d with the fast path %v", fast, c.fast)
			}
			t.Logf("ce %v\nbr %v", ce, br)
		})
	}
}

// mtu proves that translated packets never exceed the path silently: the
// uplink's MTU is the WAN's minus 20, so the CE's stack answers an
// oversize DF packet with Fragmentation Needed carrying 1480, while a
// packet of exactly 1480 bytes crosses both translators (1500 as IPv6).
func mtu(t *testing.T, x *lab) {
	x.client.MustExec("ip", "link", "set", "dev", "eth0", "mtu", "1500")
	defer x.client.MustExec("ip", "link", "set", "dev", "eth0", "mtu", "1480")
	out, err := x.client.Exec("ping", "-c", "1", "-W", "2", "-M", "do", "-s", "1472", "-e", "41002", "198.51.100.7")
	if err == nil || !strings.Contains(out, "mtu = 1480") {
		t.Fatalf("1500-byte DF ping: want Frag needed with mtu 1480, got err %v:\n%s", err, out)
	}
	out, err = x.client.Exec("ping", "-c", "2", "-i", "0.2", "-W", "2", "-M", "do", "-s", "1452", "-e", "41003", "198.51.100.7")
	if err != nil || !strings.Contains(out, "2 received") {
		t.Fatalf("1480-byte DF ping: %v\n%s", err, out)
	}
	// The same size from the IPv4 side to the CE, by echo identifier.
	out, err = x.server.Exec("ping", "-c", "2", "-i", "0.2", "-W", "2", "-M", "do", "-s", "1452", "-e", "41004", "192.0.2.59")
	if err != nil || !strings.Contains(out, "2 received") {
		t.Fatalf("1480-byte DF ping from the server: %v\n%s", err, out)
	}
}

// portUnreachable sends UDP to closed ports both ways: the ICMP error of
// each end crosses both translators, inner packet and all, and the sender
// sees ECONNREFUSED.
func portUnreachable(t *testing.T, x *lab) {
	expectRefused(t, x.client, "198.51.100.7:9")
	expectRefused(t, x.server, "192.0.2.59:41999") // a port of the CE's set, closed on the client
}

// expectRefused sends UDP from a namespace to a closed port and expects the
// ICMP port unreachable to come back as ECONNREFUSED.
func expectRefused(t *testing.T, from *testenv.NS, to string) {
	t.Helper()
	c := inNS(t, from, func() (net.Conn, error) { return net.Dial("udp4", to) })
	defer c.Close()
	for try := 0; try < 3; try++ {
		c.Write([]byte("anyone there?"))
		c.SetReadDeadline(time.Now().Add(time.Second))
		_, err := c.Read(make([]byte, 64))
		if errors.Is(err, syscall.ECONNREFUSED) {
			return
		}
		t.Logf("try %d: %v", try, err)
	}
	t.Fatalf("udp to %s: no port unreachable came back", to)
}

// brOwnErrors checks the ICMP errors the BR's own stack sends, through
// br_local: a 1500-byte DF packet from the IPv4 side is 1520 bytes as
// IPv6 and too big for the BR's IPv6 link, and the sender must learn MTU
// 1480; a CE's packet whose TTL runs out at the BR must come back as Time
// Exceeded.
func brOwnErrors(t *testing.T, x *lab) {
	out, _ := x.server.Exec("ping", "-c", "1", "-W", "2", "-M", "do", "-s", "1472", "-e", "41006", "192.0.2.59")
	if !strings.Contains(out, "mtu = 1480") {
		t.Errorf("1500-byte DF ping from the server: want Frag needed with mtu 1480 from the BR, got:\n%s", out)
	}
	t.Logf("server: %s", out)
	out, _ = x.client.Exec("ping", "-c", "1", "-W", "2", "-t", "2", "-e", "41007", "198.51.100.7")
	t.Logf("client: %s", out)
	if !strings.Contains(out, "Time to live exceeded") {
		t.Errorf("TTL 2 ping from the client: want Time to live exceeded from the BR, got:\n%s", out)
	}
}

// udpFragments sends datagrams larger than any MTU both ways. A
// translated fragment grows by 28 bytes (IPv6 and Fragment Header), so the
// hosts' MTU is set 28 below the WAN's for this test.
func udpFragments(t *testing.T, x *lab) {
	x.client.MustExec("ip", "link", "set", "dev", "eth0", "mtu", "1472")
	defer x.client.MustExec("ip", "link", "set", "dev", "eth0", "mtu", "1480")
	x.server.MustExec("ip", "link", "set", "dev", "eth0", "mtu", "1472")
	defer x.server.MustExec("ip", "link", "set", "dev", "eth0", "mtu", "1500")
	udpEchoSizes(t, x, 3000, 8000)
}

// udpEcho sends datagrams of several sizes (up to the 1480-byte uplink MTU)
// and expects each echoed back unchanged.
func udpEcho(t *testing.T, x *lab) {
	udpEchoSizes(t, x, 1, 100, 1000, 1452)
}

func udpEchoSizes(t *testing.T, x *lab, sizes ...int) {
	srv := inNS(t, x.server, func() (net.PacketConn, error) { return net.ListenPacket("udp4", "198.51.100.7:7007") })
	defer srv.Close()
	go testenv.Echo(srv)
	c := inNS(t, x.client, func() (net.Conn, error) { return net.Dial("udp4", "198.51.100.7:7007") })
	defer c.Close()
	buf := make([]byte, 65536)
	for _, size := range sizes {
		msg := make([]byte, size)
		rand.Read(msg)
		ok := false
		for try := 0; try < 3 && !ok; try++ {
			if _, err := c.Write(msg); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(time.Second))
			n, err := c.Read(buf)
			ok = err == nil && bytes.Equal(buf[:n], msg)
			if err != nil {
				t.Logf("udp %d bytes, try %d: %v", size, try, err)
			}
		}
		if !ok {
			t.Fatalf("udp %d bytes: no echo", size)
		}
	}
}

// tcpBulk sends n bytes each way between the client and the server.
func tcpBulk(t *testing.T, x *lab, n int64) {
	port := tcpBulkTo(t, x, "198.51.100.7:8008", n)
	if !mustDerive(labRule, labEUP).PortSet.Contains(port) {
		t.Fatalf("client port %d outside the port set", port)
	}
}

// tcpBulkTo sends n bytes each way over one TCP connection from x.client to
// a listener on x.server at hostport, compares digests, and returns the
// client's port.
func tcpBulkTo(t *testing.T, x *lab, hostport string, n int64) uint16 {
	ln := inNS(t, x.server, func() (net.Listener, error) { return net.Listen("tcp4", hostport) })
	defer ln.Close()
	type result struct {
		sum [32]byte
		err error
	}
	srvDone := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			srvDone <- result{err: err}
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(60 * time.Second))
		h := sha256.New()
		if _, err := io.CopyN(h, c, n); err != nil {
			srvDone <- result{err: fmt.Errorf("server read: %w", err)}
			return
		}
		var r result
		copy(r.sum[:], h.Sum(nil))
		// Now the other way: server -> client.
		if _, err := io.CopyN(c, bytes.NewReader(r.sum[:]), 32); err != nil {
			r.err = err
		} else if _, err := io.CopyN(c, &seeded{seed: 7}, n); err != nil {
			r.err = fmt.Errorf("server write: %w", err)
		}
		srvDone <- r
	}()
	c := inNS(t, x.client, func() (net.Conn, error) { return net.DialTimeout("tcp4", hostport, 5*time.Second) })
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	port := uint16(c.LocalAddr().(*net.TCPAddr).Port)
	start := time.Now()
	up := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(c, up), &seeded{seed: 3}, n); err != nil {
		t.Fatalf("client write: %v", err)
	}
	var echo [32]byte
	if _, err := io.ReadFull(c, echo[:]); err != nil {
		t.Fatalf("client read digest: %v", err)
	}
	if !bytes.Equal(echo[:], up.Sum(nil)) {
		t.Fatal("server received other bytes than the client sent")
	}
	down := sha256.New()
	if _, err := io.CopyN(down, c, n); err != nil {
		t.Fatalf("client read: %v", err)
	}
	want := sha256.New()
	io.CopyN(want, &seeded{seed: 7}, n)
	if !bytes.Equal(down.Sum(nil), want.Sum(nil)) {
		t.Fatal("client received other bytes than the server sent")
	}
	if r := <-srvDone; r.err != nil {
		t.Fatal(r.err)
	}
	t.Logf("%d bytes each way in %v", n, time.Since(start))
	return port
}

// seeded is a cheap deterministic byte stream.
type seeded struct{ seed uint64 }

func (s *seeded) Read(p []byte) (int, error) {
	for i := range p {
		s.seed = s.seed*6364136223846793005 + 1442695040888963407
		p[i] = byte(s.seed >> 56)
	}
	return len(p), nil
}
