package dataplane

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/mapt-go/mapt/mapt"
	"github.com/mapt-go/mapt/testenv"
)

// TestNetnsFragmentGuard: a CE that shares its IPv4 address with another
// cannot slip a piece into the other's datagram (RFC 7599 s10.2-10.3).
// Two CEs share 192.0.2.59 (PSIDs 20 and 21, both behind the lab's CE
// link). The victim sends the first fragment of a UDP datagram to the
// server; the attacker, knowing the identification, sends a last fragment
// of its own with the same offset and a checksum-neutral payload (two
// 16-bit words swapped), before the victim's real last fragment. Without
// the BR's check the server's stack completes the datagram with the
// attacker's piece and hands it to the application, checksum and all;
// with it the piece is dropped (frag_miss) and the server reads the
// victim's datagram as sent.
func TestNetnsFragmentGuard(t *testing.T) {
	x := newLab(t, AttachAuto)
	victim := mustDerive(labRule, labEUP)
	attacker := mustDerive(labRule, netip.MustParsePrefix("2001:db8:ce:775::/64"))
	if victim.IPv4 != attacker.IPv4 || victim.PortSet.PSID == attacker.PortSet.PSID {
		t.Fatalf("the two CEs must share an address: %v %v, %v %v", victim.IPv4, victim.PortSet, attacker.IPv4, attacker.PortSet)
	}
	server := netip.MustParseAddr("198.51.100.7")
	srv6 := mapt.Embed(labDMR, server)

	// Frames go out of the CE's WAN by a packet socket, as from the CEs'
	// stacks, with the MACs the builders use.
	x.ce.MustExec("ip", "link", "set", "dev", "wan0", "address", macA.String())
	x.br.MustExec("ip", "link", "set", "dev", "eth0", "address", macB.String())

	conn := x.server.ListenPacket("udp4", "198.51.100.7:9999")
	defer conn.Close()

	const id = 0x5eed0001
	dg := udpDatagram(t, victim.MAPAddress, srv6, victim.PortSet.Range(0).First+5, 9999, 300)
	first := frag6(t, victim.MAPAddress, srv6, id, dg, 0, 160, layers.IPProtocolUDP)
	last := frag6(t, victim.MAPAddress, srv6, id, dg, 160, 500, layers.IPProtocolUDP)
	evil := append([]byte(nil), dg...)
	copy(evil[200:202], dg[202:204])
	copy(evil[202:204], dg[200:202])
	if bytes.Equal(evil, dg) {
		t.Fatal("the forged piece equals the real one")
	}
	forged := frag6(t, attacker.MAPAddress, srv6, id, evil, 160, 500, layers.IPProtocolUDP)

	before := counters(t, x.brT)
	sendFrames(t, x.ce, "wan0", macB, unix.ETH_P_IPV6, first, forged, last)
	buf := make([]byte, 2048)
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, _, err := conn.ReadFrom(buf)
	if err != nil {
		t.Fatalf("the server got no datagram: %v (br drops %v)", err, drops(t, x.brT))
	}
	if got, want := buf[:n], dg[8:]; !bytes.Equal(got, want) {
		t.Fatalf("the server got a forged datagram (%d bytes): the attacker's piece went in", n)
	}
	after := counters(t, x.brT)
	if d := after["frag_miss"] - before["frag_miss"]; d != 1 {
		t.Errorf("frag_miss moved by %d, want 1 (the forged piece)", d)
	}
	if d := after["br_6to4"] - before["br_6to4"]; d != 2 {
		t.Errorf("br_6to4 moved by %d, want 2 (the victim's pieces)", d)
	}
}

// TestNetnsTruncated: frames whose IP header is cut short reach the BR's
// hooks (a packet socket sends them as they are) and are dropped and
// counted there, before the programs can tell whether they are theirs.
func TestNetnsTruncated(t *testing.T) {
	x := newLab(t, AttachAuto)
	x.ce.MustExec("ip", "link", "set", "dev", "wan0", "address", macA.String())
	x.br.MustExec("ip", "link", "set", "dev", "eth0", "address", macB.String())
	x.server.MustExec("ip", "link", "set", "dev", "eth0", "address", macA.String())
	x.br.MustExec("ip", "link", "set", "dev", "eth1", "address", macB.String())
	b := mustDerive(labRule, labEUP)
	srv := netip.MustParseAddr("198.51.100.7")
	in6 := pkt6(t, b.MAPAddress, mapt.Embed(labDMR, srv), l4{"udp", b.PortSet.Range(0).First, 53, 100}, nil)
	in4 := pkt4(t, srv, b.IPv4.Addr(), l4{"udp", 53, b.PortSet.Range(0).First, 100}, nil)

	before := counters(t, x.brT)
	sendFrames(t, x.ce, "wan0", macB, unix.ETH_P_IPV6, in6[:14+30])
	sendFrames(t, x.server, "eth0", macB, unix.ETH_P_IP, in4[:14+12])
	time.Sleep(100 * time.Millisecond)
	after := counters(t, x.brT)
	if d := after["truncated"] - before["truncated"]; d != 2 {
		t.Errorf("truncated moved by %d, want 2 (counters %v)", d, drops(t, x.brT))
	}
}

// sendFrames writes Ethernet frames out of dev in ns by a packet socket,
// 20 ms apart so they pass the next hop in this order.
func sendFrames(t *testing.T, ns *testenv.NS, dev string, dst net.HardwareAddr, proto uint16, frames ...[]byte) {
	t.Helper()
	err := ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		sa := &unix.SockaddrLinklayer{Protocol: htons(proto), Ifindex: ifi.Index, Halen: 6}
		copy(sa.Addr[:], dst)
		for _, f := range frames {
			if err := unix.Sendto(fd, f, 0, sa); err != nil {
				return err
			}
			time.Sleep(20 * time.Millisecond)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("send frames on %s: %v", dev, err)
	}
}

func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

func counters(t *testing.T, tr *Translator) map[string]uint64 {
	t.Helper()
	c, err := tr.Counters()
	if err != nil {
		t.Fatal(err)
	}
	return c
}
