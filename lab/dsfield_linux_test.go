package lab_test

import (
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/google/gopacket/layers"

	"github.com/mapt-go/mapt/testenv"
)

// setTOS sets the TOS octet of what a UDP socket sends.
func setTOS(t *testing.T, c any, tos int) {
	t.Helper()
	raw, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	raw.Control(func(fd uintptr) { err = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_TOS, tos) })
	if err != nil {
		t.Fatal(err)
	}
}

// dsFields is the DS field of every captured IP packet (TOS or Traffic
// Class), in order.
func dsFields(c *testenv.Capture) []int {
	var out []int
	for _, p := range c.Packets() {
		if ip, ok := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6); ok {
			out = append(out, int(ip.TrafficClass))
		} else if ip, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
			out = append(out, int(ip.TOS))
		}
	}
	return out
}

// TestDSFieldLab: the DS field settings reach the translators from the
// places an operator sets them (RFC 7915 s4.1, s5.1): the BR's domain
// file (tos: 0x48) and ce-agent's flags (--traffic-class 0x20, --tos
// 0x60), with the BR's traffic-class left at copy. c1 and s both send
// with TOS 0xb8 (EF); each leg shows what its translator wrote.
func TestDSFieldLab(t *testing.T) {
	seed := seedCE11b(t, "  tos: 0x48\n", "--traffic-class", "0x20", "--tos", "0x60")

	srv := seed.S.ListenPacket("udp4", ":7")
	t.Cleanup(func() { srv.Close() })
	setTOS(t, srv, 0xb8)
	go testenv.EachPacket(srv, func(b []byte, from net.Addr) { srv.WriteTo(b, from) })
	wan := seed.CE11b.Capture("wan", "ip6 and udp port 7")
	atS := seed.S.Capture("eth0", "udp port 7")
	atC1 := seed.C1.Capture("eth0", "udp port 7")

	c, err := seed.C1.Dial("udp4", "", testenv.SeedServer+":7", 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	setTOS(t, c, 0xb8)
	got := make([]byte, 64)
	n := 0
	for try := 0; try < 3 && n == 0; try++ {
		c.Write([]byte("ds"))
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, _ = c.Read(got)
	}
	if n != 2 {
		t.Fatalf("no echo through MAP-T (%d bytes)", n)
	}
	// c1 -> CE -> BR -> s, and back: the first packet of each capture
	// is the request, the last the reply.
	for _, leg := range []struct {
		name       string
		ds         []int
		req, reply int
	}{
		{"CE WAN (IPv6)", dsFields(wan), 0x20, 0xb8}, // CE --traffic-class; BR copies
		{"s (IPv4)", dsFields(atS), 0x48, 0xb8},      // BR tos; s's own
		{"c1 (IPv4)", dsFields(atC1), 0xb8, 0x60},    // c1's own; CE --tos
	} {
		if len(leg.ds) < 2 {
			t.Errorf("%s: %d packets captured, want the request and the reply", leg.name, len(leg.ds))
			continue
		}
		if req, reply := leg.ds[0], leg.ds[len(leg.ds)-1]; req != leg.req || reply != leg.reply {
			t.Errorf("%s: DS field %#x there, %#x back; want %#x, %#x", leg.name, req, reply, leg.req, leg.reply)
		}
	}
}
