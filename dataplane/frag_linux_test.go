package dataplane

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/mapt-go/mapt/mapt"
)

// udpDatagram is a whole UDP datagram (header + payload) with its
// checksum computed for the given addresses.
func udpDatagram(t testing.TB, src, dst netip.Addr, sport, dport uint16, n int) []byte {
	t.Helper()
	udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	udp.SetNetworkLayerForChecksum(ipHeader(t, src, dst, layers.IPProtocolUDP))
	payload := make([]byte, n)
	for i := range payload {
		payload[i] = byte(i*7 + 3)
	}
	return serialize(t, udp, gopacket.Payload(payload))
}

// frag4 is one IPv4 fragment of a UDP datagram: bytes [off, off+n).
func frag4(t testing.TB, src, dst netip.Addr, id uint16, dgram []byte, off, n int, proto layers.IPProtocol) []byte {
	ip := ip4(src, dst)
	ip.Protocol = proto
	ip.Id = id
	ip.Flags = 0
	end := min(off+n, len(dgram))
	if end < len(dgram) {
		ip.Flags = layers.IPv4MoreFragments
	}
	ip.FragOffset = uint16(off / 8)
	return serialize(t, ether(false), ip, gopacket.Payload(dgram[off:end]))
}

// frag6 is one IPv6 fragment (with a Fragment Header) of a datagram.
func frag6(t testing.TB, src, dst netip.Addr, id uint32, dgram []byte, off, n int, proto layers.IPProtocol) []byte {
	ip := ip6(src, dst)
	ip.NextHeader = layers.IPProtocolIPv6Fragment
	end := min(off+n, len(dgram))
	fo := uint16(off/8) << 3
	if end < len(dgram) {
		fo |= 1
	}
	fh := []byte{byte(proto), 0, byte(fo >> 8), byte(fo)}
	fh = binary.BigEndian.AppendUint32(fh, id)
	return serialize(t, ether(true), ip, gopacket.Payload(append(fh, dgram[off:end]...)))
}

type fragOut struct {
	src, dst netip.Addr
	id       uint32
	off      int // bytes
	more     bool
	data     []byte
}

func parseFrag6(t *testing.T, out []byte) fragOut {
	t.Helper()
	p := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default)
	ip := layerOf[*layers.IPv6](t, p, layers.LayerTypeIPv6, "output")
	fh := layerOf[*layers.IPv6Fragment](t, p, layers.LayerTypeIPv6Fragment, "output")
	if fh.NextHeader != layers.IPProtocolUDP {
		t.Errorf("fragment header next %v, want UDP", fh.NextHeader)
	}
	if int(ip.Length) != len(ip.Payload) {
		t.Errorf("payload length %d, actual %d", ip.Length, len(ip.Payload))
	}
	if ip.HopLimit != 33 || ip.TrafficClass != 0x28 {
		t.Errorf("hop limit %d tc %#x", ip.HopLimit, ip.TrafficClass)
	}
	return fragOut{addr(ip.SrcIP), addr(ip.DstIP), fh.Identification, int(fh.FragmentOffset) * 8, fh.MoreFragments, fh.Payload}
}

func parseFrag4(t *testing.T, out []byte) fragOut {
	t.Helper()
	p := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default)
	ip := layerOf[*layers.IPv4](t, p, layers.LayerTypeIPv4, "output")
	verifyChecksums(t, p) // the header checksum; gopacket leaves fragment payloads undecoded
	if ip.Protocol != layers.IPProtocolUDP || ip.TTL != 33 || ip.TOS != 0x28 || ip.Flags&layers.IPv4DontFragment != 0 {
		t.Errorf("ipv4 header %+v", ip)
	}
	if int(ip.Length) != 20+len(ip.Payload) {
		t.Errorf("total length %d, actual %d", ip.Length, 20+len(ip.Payload))
	}
	return fragOut{addr(ip.SrcIP), addr(ip.DstIP), uint32(ip.Id), int(ip.FragOffset) * 8, ip.Flags&layers.IPv4MoreFragments != 0, ip.Payload}
}

// reassembleUDP joins fragments and checks the UDP checksum of the whole
// datagram against the translated addresses, with gopacket's code.
func reassembleUDP(t *testing.T, net gopacket.NetworkLayer, frags []fragOut, want []byte) {
	t.Helper()
	var d []byte
	for _, f := range frags {
		if f.off != len(d) {
			t.Fatalf("fragment at %d, want %d", f.off, len(d))
		}
		d = append(d, f.data...)
	}
	if !bytes.Equal(d[8:], want[8:]) || !bytes.Equal(d[:6], want[:6]) {
		t.Fatal("reassembled datagram differs from the original beyond the checksum")
	}
	udp := &layers.UDP{}
	if err := udp.DecodeFromBytes(d, gopacket.NilDecodeFeedback); err != nil {
		t.Fatal(err)
	}
	got := udp.Checksum
	udp.SetNetworkLayerForChecksum(net)
	b := serialize(t, udp, gopacket.Payload(udp.Payload))
	if w := binary.BigEndian.Uint16(b[6:]); got != w {
		t.Errorf("reassembled udp checksum %#04x, gopacket computes %#04x", got, w)
	}
}

// TestFragments covers RFC 7915 s4.1/s5.1 fragments: IPv4 fragments get
// a Fragment Header and back, the CE puts its PSID into the
// identification (RFC 7599 s10.3), and later fragments to a shared
// address find their CE through the first fragment (RFC 7597 s8.3.3).
func TestFragments(t *testing.T) {
	ce := load(t, ceConfig())
	br := load(t, brConfig())
	me := ceBinding.IPv4.Addr()
	our := portOf(t, ceBinding.PortSet, 30)
	my6 := ceBinding.MAPAddress

	step := func(t *testing.T, tr *Translator, to6 bool, in []byte, ret uint32, counter string) []byte {
		t.Helper()
		prog := tr.Prog6to4()
		if to6 {
			prog = tr.Prog4to6()
		}
		return runCounted(t, tr, prog, in, ret, counter)
	}

	t.Run("ce 4to6", func(t *testing.T) {
		dg := udpDatagram(t, me, serverV4, our, 4053, 300)
		f1 := parseFrag6(t, step(t, ce, true, frag4(t, me, serverV4, 0x0102, dg, 0, 160, layers.IPProtocolUDP), actRedirect, "ce_4to6"))
		f2 := parseFrag6(t, step(t, ce, true, frag4(t, me, serverV4, 0x0102, dg, 160, 500, layers.IPProtocolUDP), actRedirect, "ce_4to6"))
		for _, f := range []fragOut{f1, f2} {
			if f.src != my6 || f.dst != srvMAP {
				t.Errorf("fragment %v > %v, want %v > %v", f.src, f.dst, my6, srvMAP)
			}
		}
		if !f1.more || f2.more || f1.id != f2.id {
			t.Errorf("M flags %v %v ids %#x %#x", f1.more, f2.more, f1.id, f2.id)
		}
		if f1.id > 0xffff || !ceBinding.PortSet.Contains(uint16(f1.id)) {
			t.Errorf("identification %#x is not in our port set %v", f1.id, ceBinding.PortSet)
		}
		reassembleUDP(t, ip6(my6, srvMAP), []fragOut{f1, f2}, dg)
	})
	t.Run("ce 4to6 later fragment alone", func(t *testing.T) {
		dg := udpDatagram(t, me, serverV4, our, 4053, 300)
		// To the DMR no port is needed; to a shared-address peer it is.
		f := parseFrag6(t, step(t, ce, true, frag4(t, me, serverV4, 0x0777, dg, 160, 500, layers.IPProtocolUDP), actRedirect, "ce_4to6"))
		if f.off != 160 || f.more {
			t.Errorf("offset %d more %v", f.off, f.more)
		}
		step(t, ce, true, frag4(t, me, peerV4, 0x0778, dg, 160, 500, layers.IPProtocolUDP), actShot, "frag_miss")
	})
	t.Run("ce 4to6 icmp fragment", func(t *testing.T) {
		echo := serialize(t, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0), Id: our}, gopacket.Payload(make([]byte, 200)))
		step(t, ce, true, frag4(t, me, serverV4, 0x0103, echo, 0, 104, layers.IPProtocolICMPv4), actShot, "fragment")
	})
	t.Run("ce 6to4", func(t *testing.T) {
		dg := udpDatagram(t, srvMAP, my6, 4053, our, 300)
		f1 := parseFrag4(t, step(t, ce, false, frag6(t, srvMAP, my6, 0xabcd1234, dg, 0, 160, layers.IPProtocolUDP), actOK, "ce_6to4"))
		f2 := parseFrag4(t, step(t, ce, false, frag6(t, srvMAP, my6, 0xabcd1234, dg, 160, 500, layers.IPProtocolUDP), actOK, "ce_6to4"))
		if f1.src != serverV4 || f1.dst != me || f2.src != serverV4 || f2.dst != me {
			t.Errorf("fragments %v>%v, %v>%v", f1.src, f1.dst, f2.src, f2.dst)
		}
		if f1.id != 0x1234 || f2.id != 0x1234 || !f1.more || f2.more {
			t.Errorf("ids %#x %#x more %v %v, want 0x1234 (low 16 bits)", f1.id, f2.id, f1.more, f2.more)
		}
		reassembleUDP(t, ip4(serverV4, me), []fragOut{f1, f2}, dg)
		// A Destination Options header before the Fragment Header is left
		// out as well (RFC 7915 s5.1).
		in := frag6(t, srvMAP, my6, 0xabcd1235, dg, 0, 160, layers.IPProtocolUDP)
		withExt := append(append(append([]byte{}, in[:54]...), 44, 0, 1, 4, 0, 0, 0, 0), in[54:]...)
		withExt[14+6] = 60
		binary.BigEndian.PutUint16(withExt[14+4:], binary.BigEndian.Uint16(withExt[14+4:])+8)
		g1 := parseFrag4(t, step(t, ce, false, withExt, actOK, "ce_6to4"))
		g2 := parseFrag4(t, step(t, ce, false, frag6(t, srvMAP, my6, 0xabcd1235, dg, 160, 500, layers.IPProtocolUDP), actOK, "ce_6to4"))
		if g1.id != 0x1235 || !g1.more || g1.off != 0 {
			t.Errorf("fragment after destination options: id %#x more %v offset %d", g1.id, g1.more, g1.off)
		}
		reassembleUDP(t, ip4(serverV4, me), []fragOut{g1, g2}, dg)
		// A first fragment to a port outside our set is still refused.
		bad := udpDatagram(t, srvMAP, my6, 4053, notIn(t, ceBinding.PortSet), 300)
		step(t, ce, false, frag6(t, srvMAP, my6, 0x55, bad, 0, 160, layers.IPProtocolUDP), actShot, "dst_port")
	})
	t.Run("br 4to6 shared address", func(t *testing.T) {
		oneV4 := netip.MustParseAddr("203.0.113.5")
		p3 := portOf(t, mapt.PortSet{PortParams: ruleOne3.Params(), PSID: 3}, 5)
		dst6 := mapV4(t, ruleOne3, oneV4, p3)
		dg := udpDatagram(t, serverV4, oneV4, 4053, p3, 300)
		f1 := parseFrag6(t, step(t, br, true, frag4(t, serverV4, oneV4, 0x4242, dg, 0, 160, layers.IPProtocolUDP), actOK, "br_4to6"))
		f2 := parseFrag6(t, step(t, br, true, frag4(t, serverV4, oneV4, 0x4242, dg, 160, 500, layers.IPProtocolUDP), actOK, "br_4to6"))
		if f1.dst != dst6 || f2.dst != dst6 || f1.src != srvMAP || f1.id != 0x4242 || f2.id != 0x4242 {
			t.Errorf("fragments to %v and %v (ids %#x %#x), want %v", f1.dst, f2.dst, f1.id, f2.id, dst6)
		}
		reassembleUDP(t, ip6(srvMAP, dst6), []fragOut{f1, f2}, dg)
		step(t, br, true, frag4(t, serverV4, oneV4, 0x4243, dg, 160, 500, layers.IPProtocolUDP), actShot, "frag_miss")
	})
	t.Run("br 6to4", func(t *testing.T) {
		dg := udpDatagram(t, my6, srvMAP, our, 4053, 300)
		f1 := parseFrag4(t, step(t, br, false, frag6(t, my6, srvMAP, 0x0000f00d, dg, 0, 160, layers.IPProtocolUDP), actOK, "br_6to4"))
		f2 := parseFrag4(t, step(t, br, false, frag6(t, my6, srvMAP, 0x0000f00d, dg, 160, 500, layers.IPProtocolUDP), actOK, "br_6to4"))
		if f1.src != me || f1.dst != serverV4 || f2.src != me || f1.id != 0xf00d || f2.id != 0xf00d {
			t.Errorf("fragments %v>%v ids %#x %#x", f1.src, f1.dst, f1.id, f2.id)
		}
		reassembleUDP(t, ip4(me, serverV4), []fragOut{f1, f2}, dg)
		// A first fragment with a port of another PSID is refused.
		bad := udpDatagram(t, my6, srvMAP, notIn(t, ceBinding.PortSet), 4053, 300)
		step(t, br, false, frag6(t, my6, srvMAP, 0x77, bad, 0, 160, layers.IPProtocolUDP), actShot, "src_port")
	})
}
