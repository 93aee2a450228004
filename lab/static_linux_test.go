package lab_test

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mapt-go/mapt/kernels/proto"
	"github.com/mapt-go/mapt/lab"
	"github.com/mapt-go/mapt/testenv"
)

// seenFlow is a flow as the server saw it.
type seenFlow struct {
	proto string
	src   netip.AddrPort // the source address and port (ICMP: echo identifier)
}

// flowLog is what the server side of TestStaticPath records.
type flowLog struct {
	mu    sync.Mutex
	flows []seenFlow
}

func (f *flowLog) add(proto string, a net.Addr) {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return
	}
	f.mu.Lock()
	f.flows = append(f.flows, seenFlow{proto, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())})
	f.mu.Unlock()
}

func (f *flowLog) take() []seenFlow {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.flows
	f.flows = nil
	return out
}

// TestStaticPath is the lab path with no Kea and no DHCPv6 at all, so it
// runs everywhere the product does (the kernel matrix's VMs too): the
// seed network, `br run --config` with the seed's domain file, both CEs'
// `ce-agent run` in static mode (--rule, --dmr, --prefix), and ping, UDP
// and TCP from each LAN host to the IPv4 server. The server checks every
// flow's source: the CE's IPv4 address and a port (ICMP: an echo
// identifier) of its port set, which is what the NAT into the port set,
// the 4->6 and 6->4 translations and the BR's s8.3 check together make
// of the LAN host's 192.168.0.4 and whatever port it used.
func TestStaticPath(t *testing.T) {
	testenv.Require(t, "ip", "ping")
	bin := testenv.BuildAgentAndBR(t)
	seed := testenv.NewSeed(t)
	dir := seed.Lab.Dir()
	domain := filepath.Join(dir, "domain.yaml")
	if err := os.WriteFile(domain, []byte(lab.DomainYAML(lab.Options{})), 0o644); err != nil {
		t.Fatal(err)
	}
	// What Kea's hook does in the zero-touch lab: the BR routes each
	// delegated prefix to its CE (the source check needs it).
	seed.RouteDelegated("2001:db8:ce:11b::/64", testenv.SeedCE11bWAN)
	seed.RouteDelegated("2001:db8:ce:774::/64", testenv.SeedCE774WAN)
	br := seed.BR.Start(filepath.Join(bin, "br"), "run", "--config", domain)

	type ceWant struct {
		ns, client  *testenv.NS
		prefix      string
		ipv4        string
		first, last uint16
	}
	ces := []ceWant{
		{seed.CE11b, seed.C1, "2001:db8:ce:11b::/64", "192.0.2.8", 55296, 57343},
		{seed.CE774, seed.C2, "2001:db8:ce:774::/64", "192.0.2.59", 40960, 43007},
	}
	var ceAttach string
	for _, c := range ces {
		s := runCE(t, bin, c.ns, dir, "--rule", "2001:db8:ce::/51,192.0.2.0/24,13,a=0", "--dmr", "64:ff9b::/96", "--prefix", c.prefix)
		if s.Source != "static" || s.Binding == nil || s.Binding.IPv4 != c.ipv4+"/32" ||
			len(s.Binding.Ports) != 1 || s.Binding.Ports[0] != [2]uint16{c.first, c.last} {
			t.Fatalf("%s: status %+v, binding %+v: want %s ports %d-%d", c.ns.Short, s, s.Binding, c.ipv4, c.first, c.last)
		}
		ceAttach = s.AttachMode
	}
	var brAttach string
	attachRE := regexp.MustCompile(`\battach=(\w+)`)
	if !testenv.WaitFor(2*time.Minute, func() bool {
		m := attachRE.FindStringSubmatch(br.Output())
		if m != nil {
			brAttach = m[1]
		}
		return m != nil || br.Exited()
	}) || br.Exited() {
		t.Fatalf("br did not start:\n%s", br.Output())
	}

	// The server: UDP and TCP echo on s:7, every peer address recorded.
	var seen flowLog
	udp := seed.S.ListenPacket("udp4", ":7")
	go testenv.EachPacket(udp, func(b []byte, from net.Addr) {
		seen.add("udp", from)
		udp.WriteTo(b, from)
	})
	seed.S.ServeTCP("tcp4", ":7", func(c net.Conn) {
		seen.add("tcp", c.RemoteAddr())
		buf := make([]byte, 2048)
		n, _ := c.Read(buf)
		c.Write(buf[:n])
	})

	// ICMP: a raw socket on s gets a copy of every echo request the
	// kernel answers, with the identifier the NAT chose (the client sees
	// its own back in the reply, so only s can tell).
	raw := seed.S.ListenPacket("ip4:icmp", "0.0.0.0")
	go testenv.EachPacket(raw, func(b []byte, from net.Addr) {
		// type 8 (echo request), code, checksum, identifier, sequence
		if len(b) >= 8 && b[0] == 8 {
			seen.add("icmp", &net.UDPAddr{IP: from.(*net.IPAddr).IP, Port: int(binary.BigEndian.Uint16(b[4:6]))})
		}
	})

	checked := 0
	for _, c := range ces {
		c.client.MustExec("ping", "-c", "2", "-i", "0.3", "-W", "3", testenv.SeedServer)
		for _, network := range []string{"udp", "tcp"} {
			if err := echo(c.client, network); err != nil {
				t.Fatalf("%s: %v\nbr:\n%s", c.client.Short, err, br.Output())
			}
		}
		flows := seen.take()
		have := map[string]bool{}
		for _, f := range flows {
			if f.src.Addr().String() != c.ipv4 || f.src.Port() < c.first || f.src.Port() > c.last {
				t.Errorf("%s: server saw %s from %s: want %s, port %d-%d", c.client.Short, f.proto, f.src, c.ipv4, c.first, c.last)
			}
			have[f.proto] = true
			checked++
		}
		for _, p := range []string{"icmp", "udp", "tcp"} {
			if !have[p] {
				t.Errorf("%s: the server saw no %s (saw %v)", c.client.Short, p, flows)
			}
		}
	}
	b, _ := json.Marshal(proto.Lab{CEAttach: ceAttach, BRAttach: brAttach, Checked: checked})
	t.Logf("%s%s", proto.LabPrefix, b)
}

// echo sends a message to s:7 over network from ns and wants it back.
func echo(ns *testenv.NS, network string) error {
	msg := "static path " + network + " from " + ns.Short
	var last error
	for try := 0; try < 3; try++ {
		c, err := ns.Dial(network, "", testenv.SeedServer+":7", 5*time.Second)
		if err != nil {
			last = err
			continue
		}
		c.SetDeadline(time.Now().Add(3 * time.Second))
		buf := make([]byte, 256)
		_, err = c.Write([]byte(msg))
		var n int
		if err == nil {
			n, err = c.Read(buf)
		}
		c.Close()
		if err == nil && string(buf[:n]) == msg {
			return nil
		}
		last = fmt.Errorf("%s echo: %q, %v", network, buf[:n], err)
		if strings.Contains(fmt.Sprint(err), "refused") {
			break
		}
	}
	return last
}
