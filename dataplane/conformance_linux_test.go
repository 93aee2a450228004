package dataplane

// Table tests for RFC 7915 / RFC 7599 conformance beyond the basic paths
// (the requirements of the conformance issue, one test each): ICMP errors
// from IPv6 routers, the MTU in translated errors, RFC 4884 extensions,
// the size of ICMPv4 errors, lowest-ipv6-mtu, the translator's own errors,
// and every transport protocol. Each case goes through BPF_PROG_TEST_RUN
// and gopacket checks every checksum it knows (decode).

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/mapt-go/mapt/mapt"
)

// inetSum is the ones' complement sum of the byte strings (RFC 1071).
func inetSum(bs ...[]byte) uint16 {
	var sum uint32
	var odd []byte
	for _, b := range bs {
		b = append(odd, b...)
		odd = nil
		for ; len(b) >= 2; b = b[2:] {
			sum += uint32(b[0])<<8 | uint32(b[1])
		}
		if len(b) == 1 {
			odd = b
		}
	}
	if len(odd) == 1 {
		sum += uint32(odd[0]) << 8
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}

// pseudo is the IPv4 or IPv6 pseudo-header of a transport segment.
func pseudo(src, dst netip.Addr, proto uint8, n int) []byte {
	if src.Is4() {
		b := append(src.AsSlice(), dst.AsSlice()...)
		return append(b, 0, proto, byte(n>>8), byte(n))
	}
	b := append(src.AsSlice(), dst.AsSlice()...)
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	return append(b, 0, 0, 0, proto)
}

// rawPkt builds an Ethernet + IP packet of any protocol around body; with
// csumOff >= 0 the pseudo-header checksum at that offset is filled in.
func rawPkt(t testing.TB, src, dst netip.Addr, proto uint8, body []byte, csumOff int) []byte {
	t.Helper()
	body = append([]byte(nil), body...)
	if csumOff >= 0 {
		body[csumOff], body[csumOff+1] = 0, 0
		cs := ^inetSum(pseudo(src, dst, proto, len(body)), body)
		binary.BigEndian.PutUint16(body[csumOff:], cs)
	}
	return serialize(t, ether(src.Is6()), ipHeader(t, src, dst, layers.IPProtocol(proto)), gopacket.Payload(body))
}

// l4Body is a transport header with ports sport and dport at bytes 0-3
// (SCTP, DCCP, UDP-Lite) followed by data, hlen bytes of header in all.
func l4Body(sport, dport uint16, hlen, data int) []byte {
	b := make([]byte, hlen+data)
	binary.BigEndian.PutUint16(b, sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	for i := 4; i < len(b); i++ {
		b[i] = byte(i*13 + 1)
	}
	return b
}

// ipOf decodes the outer IP header of a frame: addresses, protocol (after
// IPv6 extension headers are none) and the transport bytes.
func ipOf(t *testing.T, out []byte) (src, dst netip.Addr, proto uint8, body []byte) {
	t.Helper()
	p := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default)
	if ip, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
		return addr(ip.SrcIP), addr(ip.DstIP), uint8(ip.Protocol), ip.Payload
	}
	if ip, ok := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6); ok {
		return addr(ip.SrcIP), addr(ip.DstIP), uint8(ip.NextHeader), ip.Payload
	}
	t.Fatalf("no IP header in\n%s", p.Dump())
	return
}

// checkRaw checks a translated packet of any protocol: addresses, the
// protocol, the transport bytes unchanged but for the checksum at csumOff
// (>= 0), which must be right for the new pseudo-header.
func checkRaw(t *testing.T, out []byte, src, dst netip.Addr, proto uint8, in []byte, csumOff int) {
	t.Helper()
	s, d, pr, body := ipOf(t, out)
	if s != src || d != dst || pr != proto {
		t.Fatalf("%v > %v proto %d, want %v > %v proto %d", s, d, pr, src, dst, proto)
	}
	if len(body) != len(in) {
		t.Fatalf("transport bytes %d, want %d", len(body), len(in))
	}
	for i := range body {
		if csumOff >= 0 && (i == csumOff || i == csumOff+1) {
			continue
		}
		if body[i] != in[i] {
			t.Fatalf("transport byte %d is %#x, want %#x", i, body[i], in[i])
		}
	}
	if csumOff >= 0 {
		if got := inetSum(pseudo(s, d, proto, len(body)), body); got != 0xffff {
			t.Errorf("checksum at %d wrong for the new pseudo-header (sum %#04x)", csumOff, got)
		}
	}
}

// runCase runs one packet and checks the verdict and that exactly the
// given counters moved by one each.
func runCase(t *testing.T, tr *Translator, prog string, in []byte, ret uint32, counters ...string) []byte {
	t.Helper()
	var got uint32
	var out []byte
	d := counterDelta(t, tr, func() { got, out = run(t, tr.coll.Programs[prog], in) })
	if got != ret {
		t.Fatalf("verdict %d, want %d (counters %v)", got, ret, d)
	}
	if len(d) != len(counters) {
		t.Errorf("counters moved %v, want %v by 1", d, counters)
	}
	for _, c := range counters {
		if d[c] != 1 {
			t.Errorf("counters moved %v, want %v by 1", d, counters)
		}
	}
	return out
}

// A full-address CE (k = 0: every protocol translates by address).
var fullBinding = mustDerive(ruleFull, netip.MustParsePrefix("2001:db8:200:4200::/56"))

func fullCEConfig() Config {
	c := ceConfig()
	c.Binding = fullBinding
	return c
}

// TestAllProtocols: RFC 7915 s5.1 "all transport protocols are
// translated". With ports (UDP-Lite, SCTP, DCCP) the port checks apply
// and UDP-Lite's and DCCP's pseudo-header checksums are updated; SCTP's
// CRC32c covers no address. Without ports (GRE, ESP, ...) only bindings
// that need no port (k = 0) translate them; with port sharing they are
// dropped and counted.
func TestAllProtocols(t *testing.T) {
	full := load(t, fullCEConfig())
	shared := load(t, ceConfig())
	br := load(t, brConfig())
	me := ceBinding.IPv4.Addr()
	our := portOf(t, ceBinding.PortSet, 4)
	fme := fullBinding.IPv4.Addr()
	type proto struct {
		name    string
		num     uint8
		hlen    int
		csumOff int
		ports   bool
	}
	protos := []proto{
		{"udplite", 136, 8, 6, true},
		{"dccp", 33, 16, 6, true},
		{"sctp", 132, 12, -1, true},
		{"gre", 47, 4, -1, false},
		{"esp", 50, 8, -1, false},
		{"unassigned 253", 253, 4, -1, false},
	}
	for _, pr := range protos {
		t.Run(pr.name, func(t *testing.T) {
			// A full-address CE translates it both ways.
			body := l4Body(40000, 5000, pr.hlen, 30)
			out := runCase(t, full, "ce_egress", rawPkt(t, fme, serverV4, pr.num, body, pr.csumOff), actRedirect, "ce_4to6")
			checkRaw(t, out, fullBinding.MAPAddress, srvMAP, pr.num, body, pr.csumOff)
			back := l4Body(5000, 40000, pr.hlen, 30)
			out = runCase(t, full, "ce_ingress", rawPkt(t, srvMAP, fullBinding.MAPAddress, pr.num, back, pr.csumOff), actOK, "ce_6to4")
			checkRaw(t, out, serverV4, fme, pr.num, back, pr.csumOff)
			// The BR too, for the full-address CE.
			out = runCase(t, br, "br_ingress6", rawPkt(t, fullBinding.MAPAddress, srvMAP, pr.num, body, pr.csumOff), actOK, "br_6to4")
			checkRaw(t, out, fme, serverV4, pr.num, body, pr.csumOff)
			out = runCase(t, br, "br_ingress4", rawPkt(t, serverV4, fme, pr.num, back, pr.csumOff), actOK, "br_4to6")
			checkRaw(t, out, srvMAP, fullBinding.MAPAddress, pr.num, back, pr.csumOff)

			// With port sharing: the ports must be the CE's, and a
			// protocol without ports cannot be shared.
			sbody := l4Body(our, 5000, pr.hlen, 30)
			if !pr.ports {
				runCase(t, shared, "ce_egress", rawPkt(t, me, serverV4, pr.num, sbody, pr.csumOff), actShot, "proto")
				runCase(t, br, "br_ingress6", rawPkt(t, ceBinding.MAPAddress, srvMAP, pr.num, sbody, pr.csumOff), actShot, "proto")
				runCase(t, br, "br_ingress4", rawPkt(t, serverV4, me, pr.num, sbody, pr.csumOff), actShot, "proto")
				return
			}
			out = runCase(t, shared, "ce_egress", rawPkt(t, me, serverV4, pr.num, sbody, pr.csumOff), actRedirect, "ce_4to6")
			checkRaw(t, out, ceBinding.MAPAddress, srvMAP, pr.num, sbody, pr.csumOff)
			runCase(t, shared, "ce_egress", rawPkt(t, me, serverV4, pr.num, l4Body(notIn(t, ceBinding.PortSet), 5000, pr.hlen, 30), pr.csumOff), actShot, "src_not_ours")
			sback := l4Body(5000, our, pr.hlen, 30)
			out = runCase(t, shared, "ce_ingress", rawPkt(t, srvMAP, ceBinding.MAPAddress, pr.num, sback, pr.csumOff), actOK, "ce_6to4")
			checkRaw(t, out, serverV4, me, pr.num, sback, pr.csumOff)
			runCase(t, shared, "ce_ingress", rawPkt(t, srvMAP, ceBinding.MAPAddress, pr.num, l4Body(5000, notIn(t, ceBinding.PortSet), pr.hlen, 30), pr.csumOff), actShot, "dst_port")
			out = runCase(t, br, "br_ingress6", rawPkt(t, ceBinding.MAPAddress, srvMAP, pr.num, sbody, pr.csumOff), actOK, "br_6to4")
			checkRaw(t, out, me, serverV4, pr.num, sbody, pr.csumOff)
			runCase(t, br, "br_ingress6", rawPkt(t, ceBinding.MAPAddress, srvMAP, pr.num, l4Body(notIn(t, ceBinding.PortSet), 5000, pr.hlen, 30), pr.csumOff), actShot, "src_port")
			out = runCase(t, br, "br_ingress4", rawPkt(t, serverV4, me, pr.num, sback, pr.csumOff), actOK, "br_4to6")
			checkRaw(t, out, srvMAP, ceBinding.MAPAddress, pr.num, sback, pr.csumOff)
		})
	}
	// RFC 7915 s4.2: IGMP is single-hop, silently dropped even where
	// any other protocol would pass by address.
	t.Run("igmp", func(t *testing.T) {
		body := []byte{0x16, 0, 0xfa, 0x04, 239, 1, 2, 3}
		runCase(t, full, "ce_egress", rawPkt(t, fme, serverV4, 2, body, -1), actShot, "proto")
		runCase(t, br, "br_ingress4", rawPkt(t, serverV4, fme, 2, body, -1), actShot, "proto")
	})
	t.Run("gre fragments, full address", func(t *testing.T) {
		body := l4Body(0, 0, 4, 100)
		// The Fragment Header after the IPv6 header: next header,
		// offset and M, identification (RFC 7915 s4.1).
		fh := func(out []byte) (next uint8, off int, more bool, id uint32) {
			if out[14+6] != 44 {
				t.Fatalf("next header %d, want a Fragment Header", out[14+6])
			}
			f := out[14+40:]
			fo := binary.BigEndian.Uint16(f[2:])
			return f[0], int(fo>>3) * 8, fo&1 == 1, binary.BigEndian.Uint32(f[4:])
		}
		out := runCase(t, full, "ce_egress", frag4(t, fme, serverV4, 77, body, 0, 48, 47), actRedirect, "ce_4to6")
		if n, off, more, id := fh(out); n != 47 || off != 0 || !more || id != 77 {
			t.Errorf("first fragment: next %d offset %d more %v id %d", n, off, more, id)
		}
		out = runCase(t, full, "ce_egress", frag4(t, fme, serverV4, 77, body, 48, 100, 47), actRedirect, "ce_4to6")
		if n, off, more, id := fh(out); n != 47 || off != 48 || more || id != 77 {
			t.Errorf("last fragment: next %d offset %d more %v id %d", n, off, more, id)
		}
	})
	t.Run("ah after a fragment header", func(t *testing.T) {
		// RFC 7915 s5.1.1: an extension header after the Fragment
		// Header (but ESP) drops the packet.
		runCase(t, full, "ce_ingress", frag6(t, srvMAP, fullBinding.MAPAddress, 5, l4Body(0, 0, 8, 40), 0, 24, layers.IPProtocolAH), actShot, "ipv6_exthdr")
	})
}

// TestRouterICMPErrors: ICMPv6 errors from IPv6 routers of the access
// network (addresses no rule maps) are translated at the BR from the
// configured ICMP source (RFC 7915 s5.2, RFC 6791; default 192.0.0.8), as
// long as the packet they quote went to a real CE with a port of its set,
// and leave by the IPv4 side directly (the source may be the BR's own).
// A CE may only report on its own packets (icmp_inner).
func TestRouterICMPErrors(t *testing.T) {
	cfg := brConfig()
	cfg.ICMPSource = netip.MustParseAddr("198.51.100.1")
	br := load(t, cfg)
	dflt := load(t, brConfig())
	me := ceBinding.IPv4.Addr()
	our := portOf(t, ceBinding.PortSet, 21)
	my6 := ceBinding.MAPAddress
	router := netip.MustParseAddr("2001:db8:f00::1")
	tcpIn := inner(t, srvMAP, my6, l4{"tcp", 443, our, 1400}, 48+8)
	cases := []xlatCase{
		{"packet too big from a router", icmpErr6(t, router, srvMAP, 2, 0, 1400, tcpIn), actRedirect, "br_6to4",
			&wantErr{osrc: cfg.ICMPSource, odst: serverV4, isrc: serverV4, idst: me, typ: 3, code: 4, rest: 1380, isport: 443, idport: our}},
		{"time exceeded from a router", icmpErr6(t, router, srvMAP, 3, 0, 0, inner(t, srvMAP, my6, l4{"udp", 4053, our, 30}, 0)), actRedirect, "br_6to4",
			&wantErr{osrc: cfg.ICMPSource, odst: serverV4, isrc: serverV4, idst: me, typ: 11, code: 0, isport: 4053, idport: our, fullInner: true}},
		{"router error about another ce's port", icmpErr6(t, router, srvMAP, 3, 0, 0, inner(t, srvMAP, my6, l4{"udp", 4053, notIn(t, ceBinding.PortSet), 30}, 0)), actShot, "src_port", nil},
		{"router error about no ce", icmpErr6(t, router, srvMAP, 3, 0, 0, inner(t, srvMAP, netip.MustParseAddr("2001:db9::1"), l4{"udp", 4053, our, 30}, 0)), actShot, "src_unknown", nil},
	}
	runCases(t, br, br.Prog6to4(), cases)
	t.Run("default source", func(t *testing.T) {
		runCases(t, dflt, dflt.Prog6to4(), []xlatCase{{"packet too big", icmpErr6(t, router, srvMAP, 2, 0, 1400, tcpIn), actRedirect, "br_6to4",
			&wantErr{osrc: DummyIPv4, odst: serverV4, isrc: serverV4, idst: me, typ: 3, code: 4, rest: 1380, isport: 443, idport: our}}})
	})
	t.Run("a ce reporting on another ce's packet", func(t *testing.T) {
		// The inner port is the reporter's, the inner address another
		// CE's: the outer check passes, the quoted packet does not.
		peer := bindingFor(t, ruleA, peerV4, portOf(t, peerPS, 1))
		runCases(t, br, br.Prog6to4(), []xlatCase{{"icmp_inner", icmpErr6(t, my6, srvMAP, 1, 4, 0, inner(t, srvMAP, peer.MAPAddress, l4{"udp", 4053, our, 30}, 0)), actShot, "icmp_inner", nil}})
	})
	t.Run("an icmpv4 error to a ce about another ce's packet", func(t *testing.T) {
		r4 := netip.MustParseAddr("203.0.113.254")
		in := icmpErr4(t, r4, me, 11, 0, 0, inner(t, peerV4, serverV4, l4{"udp", our, 4053, 30}, 0))
		runCases(t, br, br.Prog4to6(), []xlatCase{{"icmp_inner", in, actShot, "icmp_inner", nil}})
	})
}

// meshAlias is nat.MeshAlias (the agent passes it on).
var meshAlias = netip.MustParseAddr("192.0.0.7")

// DummyIPv4 is RFC 7600's 192.0.0.8, the source of translated errors
// from addresses with no IPv4 form when nothing else is configured.
var DummyIPv4 = netip.MustParseAddr("192.0.0.8")

// TestICMPMTU: the MTU a translated Packet Too Big / Fragmentation Needed
// reports (RFC 7915 s4.2, s5.2): +/- 20, bounded by the MTUs of both
// sides, 1280 at least towards IPv6, the RFC 1191 plateau below the
// quoted packet's length when the IPv4 router sent 0, 28 less when the
// quoted IPv6 packet carried a Fragment Header.
func TestICMPMTU(t *testing.T) {
	me := ceBinding.IPv4.Addr()
	our := portOf(t, ceBinding.PortSet, 9)
	my6 := ceBinding.MAPAddress
	r4 := netip.MustParseAddr("203.0.113.254")
	// The quoted packets claim their full length in the header but
	// carry only 8 bytes of transport header.
	in4 := func(total int) []byte { return inner(t, serverV4, me, l4{"tcp", 443, our, total - 40}, 28) }
	ce := load(t, ceConfig())
	small := ceConfig()
	small.IPv6Side.MTU = 1400
	ceSmall := load(t, small)
	want := func(rest uint32) *wantErr {
		return &wantErr{osrc: my6, odst: srvMAP, isrc: srvMAP, idst: my6, typ: 2, code: 0, rest: rest, isport: 443, idport: our}
	}
	runCases(t, ce, ce.Prog4to6(), []xlatCase{
		{"mtu + 20", icmpErr4(t, me, serverV4, 3, 4, 1400, in4(1500)), actRedirect, "ce_4to6", want(1420)},
		{"mtu 0: plateau 1492 below 1500", icmpErr4(t, me, serverV4, 3, 4, 0, in4(1500)), actRedirect, "ce_4to6", want(1512)},
		{"mtu 0: plateau 8166 below 9000", icmpErr4(t, me, serverV4, 3, 4, 0, in4(9000)), actRedirect, "ce_4to6", want(8186)},
		{"mtu 0: plateau below 1280 gives 1280", icmpErr4(t, me, serverV4, 3, 4, 0, in4(1100)), actRedirect, "ce_4to6", want(1280)},
		{"small mtu: 1280 at least", icmpErr4(t, me, serverV4, 3, 4, 576, in4(1500)), actRedirect, "ce_4to6", want(1280)},
	})
	t.Run("ipv6 next hop", func(t *testing.T) {
		runCases(t, ceSmall, ceSmall.Prog4to6(), []xlatCase{
			{"bounded by the wan's 1400", icmpErr4(t, me, serverV4, 3, 4, 1450, in4(1500)), actRedirect, "ce_4to6", want(1400)},
		})
	})
	t.Run("br", func(t *testing.T) {
		cfg := brConfig()
		cfg.IPv6Side.MTU, cfg.IPv4Side.MTU = 1420, 1350
		br := load(t, cfg)
		tcp6 := inner(t, srvMAP, my6, l4{"tcp", 443, our, 1400}, 48+8)
		runCases(t, br, br.Prog4to6(), []xlatCase{
			{"bounded by the ipv4 side + 20", icmpErr4(t, r4, me, 3, 4, 1400, inner(t, me, serverV4, l4{"tcp", our, 443, 1400}, 28)), actOK, "br_4to6",
				&wantErr{osrc: mapt.Embed(dmr, r4), odst: my6, isrc: my6, idst: srvMAP, typ: 2, code: 0, rest: 1370, isport: our, idport: 443}},
		})
		runCases(t, br, br.Prog6to4(), []xlatCase{
			{"bounded by the ipv4 side", icmpErr6(t, my6, srvMAP, 2, 0, 1500, tcp6), actOK, "br_6to4",
				&wantErr{osrc: me, odst: serverV4, isrc: serverV4, idst: me, typ: 3, code: 4, rest: 1350, isport: 443, idport: our}},
			{"bounded by the ipv6 side - 20", icmpErr6(t, my6, srvMAP, 2, 0, 1380, tcp6), actOK, "br_6to4",
				&wantErr{osrc: me, odst: serverV4, isrc: serverV4, idst: me, typ: 3, code: 4, rest: 1350, isport: 443, idport: our}},
		})
		// A quoted first fragment: its IPv4 form is 28 bytes shorter.
		dgram := udpDatagram(t, srvMAP, my6, 4053, our, 1300)
		fragIn := frag6(t, srvMAP, my6, 99, dgram, 0, 1232, layers.IPProtocolUDP)[14 : 14+48+8]
		fragIn = append([]byte(nil), fragIn...)
		dflt := load(t, brConfig())
		runCases(t, dflt, dflt.Prog6to4(), []xlatCase{
			{"quoted fragment: mtu - 28", icmpErr6(t, my6, srvMAP, 2, 0, 1400, fragIn), actOK, "br_6to4",
				&wantErr{osrc: me, odst: serverV4, isrc: serverV4, idst: me, typ: 3, code: 4, rest: 1372, isport: 4053, idport: our}},
		})
	})
}

// ext4884 is an RFC 4884 extension structure: header (version 2) and one
// 12-byte object, 16 bytes.
func ext4884() []byte {
	return []byte{0x20, 0, 0xab, 0xcd, 0, 12, 1, 1, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4}
}

// withExt pads an original datagram field to n bytes and appends the
// extension.
func withExt(orig []byte, n int) []byte {
	b := make([]byte, n)
	copy(b, orig)
	return append(b, ext4884()...)
}

// TestRFC4884: an extension structure after the original datagram survives
// translation behind the field padded to the other family's word size and
// to 128 bytes, with the length attribute in the right unit and place
// (RFC 7915 s4.2, s5.2; RFC 4884 s4-5); a type without a length attribute
// on the other side leaves it out. The checksums cover all of it.
func TestRFC4884(t *testing.T) {
	ce := load(t, ceConfig())
	me := ceBinding.IPv4.Addr()
	our := portOf(t, ceBinding.PortSet, 9)
	my6 := ceBinding.MAPAddress
	t.Run("4to6", func(t *testing.T) {
		orig := inner(t, serverV4, me, l4{"udp", 4053, our, 72}, 0) // 100 bytes
		// Length attribute 32 words: a 128-byte field, then the extension.
		in := icmpErr4(t, me, serverV4, 11, 0, 32<<16, withExt(orig, 128))
		out := runCase(t, ce, "ce_egress", in, actRedirect, "ce_4to6")
		checkErr6(t, out, wantErr{osrc: my6, odst: srvMAP, isrc: srvMAP, idst: my6, typ: 3, code: 0, rest: 19 << 24, isport: 4053, idport: our})
		// 128 + 20 = 148 bytes, padded to 152 = 19 words; then the extension.
		icmp := out[14+40:]
		if got := icmp[8+152:]; !bytes.Equal(got, ext4884()) {
			t.Errorf("extension % x, want % x", got, ext4884())
		}
		if !bytes.Equal(icmp[8+148:8+152], []byte{0, 0, 0, 0}) {
			t.Errorf("padding % x", icmp[8+148:8+152])
		}
		// Fragmentation Needed becomes Packet Too Big, which has no
		// length attribute: the extension is left out.
		ptb := icmpErr4(t, me, serverV4, 3, 4, 32<<16|1400, withExt(orig, 128))
		out = runCase(t, ce, "ce_egress", ptb, actRedirect, "ce_4to6")
		checkErr6(t, out, wantErr{osrc: my6, odst: srvMAP, isrc: srvMAP, idst: my6, typ: 2, code: 0, rest: 1420, isport: 4053, idport: our, len: 40 + 8 + 148})
	})
	t.Run("6to4", func(t *testing.T) {
		orig := inner(t, my6, srvMAP, l4{"udp", our, 4053, 40}, 0) // 88 bytes
		// Length attribute 16 words of 8: a 128-byte field.
		in := icmpErr6(t, srvMAP, my6, 1, 4, 16<<24, withExt(orig, 128))
		out := runCase(t, ce, "ce_ingress", in, actOK, "ce_6to4")
		checkErr4(t, out, wantErr{osrc: serverV4, odst: me, isrc: me, idst: serverV4, typ: 3, code: 3, rest: 32 << 16, isport: our, idport: 4053})
		// 128 - 20 = 108 bytes, padded to 128 (RFC 4884: at least 128)
		// = 32 words of 4; then the extension.
		icmp := out[14+20:]
		if got := icmp[8+128:]; !bytes.Equal(got, ext4884()) {
			t.Errorf("extension % x, want % x", got, ext4884())
		}
		if !bytes.Equal(icmp[8+108:8+128], make([]byte, 20)) {
			t.Errorf("padding % x", icmp[8+108:8+128])
		}
		// A length that does not fit the message: no extension.
		bad := icmpErr6(t, srvMAP, my6, 1, 4, 40<<24, withExt(orig, 128))
		out = runCase(t, ce, "ce_ingress", bad, actOK, "ce_6to4")
		checkErr4(t, out, wantErr{osrc: serverV4, odst: me, isrc: me, idst: serverV4, typ: 3, code: 3, rest: 0, isport: our, idport: 4053})
	})
}

// TestICMPSizeLimits: translated ICMPv4 errors are cut to 576 bytes (RFC
// 1812 s4.3.2.3) as ICMPv6 ones are to 1280 (RFC 4443 s2.4(c)), with
// their checksums right.
func TestICMPSizeLimits(t *testing.T) {
	ce := load(t, ceConfig())
	me := ceBinding.IPv4.Addr()
	our := portOf(t, ceBinding.PortSet, 9)
	big := inner(t, ceBinding.MAPAddress, srvMAP, l4{"udp", our, 4053, 1184}, 0) // 1232 bytes: a 1280-byte ICMPv6 error
	out := runCase(t, ce, "ce_ingress", icmpErr6(t, srvMAP, ceBinding.MAPAddress, 1, 4, 0, big), actOK, "ce_6to4")
	checkErr4(t, out, wantErr{osrc: serverV4, odst: me, isrc: me, idst: serverV4, typ: 3, code: 3, isport: our, idport: 4053})
	if n := len(out) - 14; n != 576 {
		t.Errorf("translated ICMPv4 error of %d bytes, want 576", n)
	}
}

// TestLowestIPv6MTU: RFC 7915 s4.1's lowest-ipv6-mtu (default 1280): at
// the BR, IPv4 packets with DF clear whose translation would exceed it go
// to the stack, which fragments them for br_local (namespace test:
// lab); smaller ones and DF-set ones are translated at once.
func TestLowestIPv6MTU(t *testing.T) {
	me := ceBinding.IPv4.Addr()
	our := portOf(t, ceBinding.PortSet, 9)
	udp := func(total int, df bool) []byte {
		return pkt4(t, serverV4, me, l4{"udp", 4053, our, total - 28}, func(ip *layers.IPv4) {
			if !df {
				ip.Flags = 0
			}
		})
	}
	cfg := brConfig()
	cfg.Local = Link{Ifindex: 1, L3: true}
	cfg.IPv6Side.MTU = 1500
	dflt := load(t, cfg)
	runCase(t, dflt, "br_ingress4", udp(1260, false), actOK, "br_4to6")
	runCase(t, dflt, "br_ingress4", udp(1261, false), actOK, "br_via_stack")
	runCase(t, dflt, "br_ingress4", udp(1400, true), actOK, "br_4to6")
	cfg.LowestIPv6MTU = 1500
	wide := load(t, cfg)
	runCase(t, wide, "br_ingress4", udp(1480, false), actOK, "br_4to6")
	runCase(t, wide, "br_ingress4", udp(1481, false), actOK, "br_via_stack")
	for _, c := range []struct{ link, lowest, want int }{{1500, 0, 1252}, {1500, 1280, 1252}, {1500, 1500, 1472}, {1400, 1500, 1372}} {
		if got := FragmentMTU(c.link, c.lowest); got != c.want {
			t.Errorf("FragmentMTU(%d, %d) = %d, want %d", c.link, c.lowest, got, c.want)
		}
	}
}

// checkReply checks an ICMP error the translator made of a dropped
// packet: sent back with the MACs swapped, from src to dst, of the type
// and code, header bytes 4-7 rest, quoting the dropped packet (cut to
// fit the size limit), its checksums right.
func checkReply(t *testing.T, in, out []byte, src, dst netip.Addr, typ, code uint8, rest uint32, size int) {
	t.Helper()
	p := decode(t, out)
	eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	if !bytes.Equal(eth.SrcMAC, macB) || !bytes.Equal(eth.DstMAC, macA) {
		t.Errorf("MACs %v > %v, want %v > %v", eth.SrcMAC, eth.DstMAC, macB, macA)
	}
	s, d, _, body := ipOf(t, out)
	if s != src || d != dst {
		t.Errorf("reply %v > %v, want %v > %v", s, d, src, dst)
	}
	if body[0] != typ || body[1] != code || binary.BigEndian.Uint32(body[4:]) != rest {
		t.Errorf("type %d code %d rest %#x, want %d %d %#x", body[0], body[1], binary.BigEndian.Uint32(body[4:]), typ, code, rest)
	}
	quoted := in[14:]
	if len(quoted) > len(body)-8 {
		quoted = quoted[:len(body)-8]
	}
	if !bytes.Equal(body[8:], quoted) {
		t.Errorf("the error does not quote the packet:\n% x\nwant\n% x", body[8:], quoted)
	}
	if size > 0 && len(out)-14 != size {
		t.Errorf("error of %d bytes, want %d", len(out)-14, size)
	}
}

// TestOwnErrors: the ICMP errors the translator sends in place of what it
// drops (RFC 7915 s4.1, s4.4, s5.1, s5.4; RFC 7599 s8.2, s8.3), counted
// with the drop, within the rate limit, never about an ICMP error.
func TestOwnErrors(t *testing.T) {
	me := ceBinding.IPv4.Addr()
	our := portOf(t, ceBinding.PortSet, 5)
	my6 := ceBinding.MAPAddress
	bad := notIn(t, ceBinding.PortSet)
	icmpSrc := netip.MustParseAddr("198.51.100.1")
	cecfg := ceConfig()
	cecfg.ICMPRate = 1_000_000
	ce := load(t, cecfg)
	brcfg := brConfig()
	brcfg.ICMPRate, brcfg.ICMPSource = 1_000_000, icmpSrc
	br := load(t, brcfg)
	route := func(ip *layers.IPv4) {
		ip.Options = []layers.IPv4Option{{OptionType: 131, OptionLength: 7, OptionData: []byte{4, 10, 0, 0, 1}}, {OptionType: 0}}
	}

	t.Run("br: source port outside the psid (s8.3)", func(t *testing.T) {
		in := pkt6(t, my6, srvMAP, l4{"udp", bad, 53, 100}, nil)
		out := runCase(t, br, "br_ingress6", in, actRedirect, "src_port", "icmp_sent")
		checkReply(t, in, out, srvMAP, my6, 1, 5, 0, 0)
	})
	t.Run("br: routing header with segments left (s5.1)", func(t *testing.T) {
		in := ext6(t, my6, srvMAP, our, 53, routing(1))
		out := runCase(t, br, "br_ingress6", in, actRedirect, "ipv6_exthdr", "icmp_sent")
		checkReply(t, in, out, srvMAP, my6, 4, 0, 40+3, 0)
	})
	t.Run("br: unexpired source route from the internet (s4.1)", func(t *testing.T) {
		in := pkt4(t, serverV4, me, l4{"udp", 53, our, 20}, route)
		out := runCase(t, br, "br_ingress4", in, actRedirect, "ipv4_options", "icmp_sent")
		checkReply(t, in, out, icmpSrc, serverV4, 3, 5, 0, 0)
	})
	t.Run("ce: destination port outside our set (s8.2)", func(t *testing.T) {
		in := pkt6(t, srvMAP, my6, l4{"tcp", 443, bad, 10}, nil)
		out := runCase(t, ce, "ce_ingress", in, actRedirect, "dst_port", "icmp_sent")
		checkReply(t, in, out, my6, srvMAP, 1, 5, 0, 0)
	})
	t.Run("ce: unexpired source route from the lan (s4.1)", func(t *testing.T) {
		in := pkt4(t, me, serverV4, l4{"udp", our, 53, 20}, route)
		out := runCase(t, ce, "ce_egress", in, actRedirect, "ipv4_options", "icmp_sent")
		// Into the CE's own stack, from RFC 7600's 192.0.0.8: its
		// conntrack takes it back to the LAN host.
		s, d, _, _ := ipOf(t, out)
		if s != DummyIPv4 || d != me {
			t.Errorf("reply %v > %v, want %v > %v", s, d, DummyIPv4, me)
		}
	})
	t.Run("cut to 1280 and 576 bytes", func(t *testing.T) {
		in := pkt6(t, my6, srvMAP, l4{"udp", bad, 53, 1400}, nil)
		out := runCase(t, br, "br_ingress6", in, actRedirect, "src_port", "icmp_sent")
		checkReply(t, in, out, srvMAP, my6, 1, 5, 0, 1280)
		in = pkt4(t, serverV4, me, l4{"udp", 53, our, 1000}, route)
		out = runCase(t, br, "br_ingress4", in, actRedirect, "ipv4_options", "icmp_sent")
		checkReply(t, in, out, icmpSrc, serverV4, 3, 5, 0, 576)
	})
	t.Run("never about a later fragment", func(t *testing.T) {
		in := pkt4(t, serverV4, me, l4{"udp", 53, our, 20}, func(ip *layers.IPv4) {
			route(ip)
			ip.FragOffset = 100
		})
		runCase(t, br, "br_ingress4", in, actShot, "ipv4_options")
	})
	t.Run("never about an icmp error", func(t *testing.T) {
		in := icmpErr6(t, my6, srvMAP, 1, 4, 0, inner(t, srvMAP, my6, l4{"udp", 53, bad, 30}, 0))
		runCase(t, br, "br_ingress6", in, actShot, "src_port")
		// Nor about one whose outer routing header has segments left
		// (RFC 4443 s2.4(e)), which an echo request gets (above).
		in = icmpErr6Ext(t, my6, srvMAP, 1, 4, inner(t, srvMAP, my6, l4{"udp", 53, our, 30}, 0), routing(1))
		runCase(t, br, "br_ingress6", in, actShot, "ipv6_exthdr")
		// Nor about one with an unexpired source route (RFC 1812
		// s4.3.2.7), which an echo request gets (above: route).
		in = icmpErrOpts(t, serverV4, me, []layers.IPv4Option{lsrr(4), {OptionType: 1}}, inner(t, me, serverV4, l4{"udp", our, 53, 30}, 0))
		runCase(t, br, "br_ingress4", in, actShot, "ipv4_options")
		in = icmpErrOpts(t, me, serverV4, []layers.IPv4Option{lsrr(4), {OptionType: 1}}, inner(t, serverV4, me, l4{"udp", 53, our, 30}, 0))
		runCase(t, ce, "ce_egress", in, actShot, "ipv4_options")
		in = icmpErr6Ext(t, srvMAP, my6, 1, 4, inner(t, my6, srvMAP, l4{"udp", our, 53, 30}, 0), destOpts(), routing(1))
		runCase(t, ce, "ce_ingress", in, actShot, "ipv6_exthdr")
		// An informational message is no error: it gets one.
		echo := pkt6(t, my6, srvMAP, l4{"echo-req", our, 0, 20}, nil)
		p := decode(t, echo)
		ip := *layerOf[*layers.IPv6](t, p, layers.LayerTypeIPv6, "echo")
		body := ip.Payload
		ip.Payload = nil
		next, chain := extChain(byte(layers.IPProtocolICMPv6), routing(1))
		ip.NextHeader = layers.IPProtocol(next)
		in = serialize(t, ether(true), &ip, gopacket.Payload(append(chain, body...)))
		out := runCase(t, br, "br_ingress6", in, actRedirect, "ipv6_exthdr", "icmp_sent")
		checkReply(t, in, out, srvMAP, my6, 4, 0, 40+3, 0)
	})
	t.Run("rate limit", func(t *testing.T) {
		cfg := brConfig()
		cfg.ICMPRate = 1
		slow := load(t, cfg)
		in := pkt6(t, my6, srvMAP, l4{"udp", bad, 53, 10}, nil)
		runCase(t, slow, "br_ingress6", in, actRedirect, "src_port", "icmp_sent")
		runCase(t, slow, "br_ingress6", in, actShot, "src_port", "icmp_limited")
	})
	t.Run("off", func(t *testing.T) {
		in := pkt6(t, my6, srvMAP, l4{"udp", bad, 53, 10}, nil)
		runCase(t, load(t, brConfig()), "br_ingress6", in, actShot, "src_port")
	})
}

// TestBRFragmentGuard: later fragments from a CE pass only when their
// first fragment, with a port of the CE's set, came from the same MAP
// address recently (RFC 7599 s10.2-10.3); otherwise a CE could slip
// pieces into the datagrams of another CE that shares its address. The
// cache entries expire, in both directions.
func TestBRFragmentGuard(t *testing.T) {
	br := load(t, brConfig())
	me := ceBinding.IPv4.Addr()
	our := portOf(t, ceBinding.PortSet, 6)
	// A CE sharing our IPv4 address with another PSID.
	other := bindingFor(t, ruleA, me, portOf(t, mapt.PortSet{PortParams: ceBinding.PortSet.PortParams, PSID: ceBinding.PortSet.PSID ^ 1}, 1))
	dgram := udpDatagram(t, ceBinding.MAPAddress, srvMAP, our, 4053, 300)
	first := frag6(t, ceBinding.MAPAddress, srvMAP, 1001, dgram, 0, 160, layers.IPProtocolUDP)
	later := frag6(t, ceBinding.MAPAddress, srvMAP, 1001, dgram, 160, 400, layers.IPProtocolUDP)
	runCase(t, br, "br_ingress6", later, actShot, "frag_miss")
	runCase(t, br, "br_ingress6", first, actOK, "br_6to4")
	runCase(t, br, "br_ingress6", later, actOK, "br_6to4")
	// The other CE's later fragment with the same identification.
	spoof := frag6(t, other.MAPAddress, srvMAP, 1001, dgram, 160, 400, layers.IPProtocolUDP)
	runCase(t, br, "br_ingress6", spoof, actShot, "frag_miss")
	// An entry older than the reassembly timeout is a miss.
	age(t, br, "frag6_seen", 16)
	runCase(t, br, "br_ingress6", later, actShot, "frag_miss")

	// 4->6: the port cache of first fragments expires too.
	in := udpDatagram(t, serverV4, me, 4053, our, 300)
	f4 := frag4(t, serverV4, me, 77, in, 0, 160, layers.IPProtocolUDP)
	l4 := frag4(t, serverV4, me, 77, in, 160, 400, layers.IPProtocolUDP)
	runCase(t, br, "br_ingress4", f4, actOK, "br_4to6")
	runCase(t, br, "br_ingress4", l4, actOK, "br_4to6")
	age(t, br, "frag_cache", 16)
	runCase(t, br, "br_ingress4", l4, actShot, "frag_miss")
}

// age makes every entry of a fragment cache look seconds older: its
// value starts with the time it was seen (ns).
func age(t *testing.T, tr *Translator, name string, seconds uint64) {
	t.Helper()
	m := tr.coll.Maps[name]
	var key, val []byte
	it := m.Iterate()
	var keys, vals [][]byte
	for it.Next(&key, &val) {
		keys = append(keys, append([]byte(nil), key...))
		vals = append(vals, append([]byte(nil), val...))
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	for i := range keys {
		ns := binary.NativeEndian.Uint64(vals[i])
		binary.NativeEndian.PutUint64(vals[i], ns-seconds*1_000_000_000)
		if err := m.Put(keys[i], vals[i]); err != nil {
			t.Fatal(err)
		}
	}
	if len(keys) == 0 {
		t.Fatalf("%s is empty", name)
	}
}

// TestBRIdentifications: IPv4 identifications the BR makes for a sharing
// CE's unfragmented packets carry its PSID where a port does (RFC 7599
// s10.3), so CEs sharing an address never collide; the CE does the same
// for its fragments.
func TestBRIdentifications(t *testing.T) {
	br := load(t, brConfig())
	our := portOf(t, ceBinding.PortSet, 6)
	ps := ceBinding.PortSet
	m := 16 - ps.Offset - ps.Len
	for i := 0; i < 20; i++ {
		out := runCase(t, br, "br_ingress6", pkt6(t, ceBinding.MAPAddress, srvMAP, l4{"udp", our, 4053, 30}, nil), actOK, "br_6to4")
		ip := decode(t, out).Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if !ps.Contains(ip.Id) {
			t.Fatalf("identification %#04x is outside PSID %d (k %d, m %d)", ip.Id, ps.PSID, ps.Len, m)
		}
	}
}

// TestMeshAlias: a CE whose IPv4 address is shared reaches the other CEs
// of that address through a stand-in (RFC 7599 s8.1): the stack would
// deliver packets to its own address locally, so nat DNATs those for
// another CE's ports to the alias, and the translator maps the alias back
// to the address; packets from those CEs get the alias as their source.
func TestMeshAlias(t *testing.T) {
	cfg := ceConfig()
	cfg.MeshAlias = meshAlias
	ce := load(t, cfg)
	me := ceBinding.IPv4.Addr()
	our := portOf(t, ceBinding.PortSet, 7)
	sibling := bindingFor(t, ruleA, me, portOf(t, mapt.PortSet{PortParams: ceBinding.PortSet.PortParams, PSID: ceBinding.PortSet.PSID ^ 1}, 1))
	sport := portOf(t, sibling.PortSet, 2)
	out := runCase(t, ce, "ce_egress", pkt4(t, me, meshAlias, l4{"tcp", our, sport, 20}, nil), actRedirect, "ce_4to6")
	check6(t, out, want6{src: ceBinding.MAPAddress, dst: sibling.MAPAddress, sport: our, dport: sport, next: layers.IPProtocolTCP})
	out = runCase(t, ce, "ce_ingress", pkt6(t, sibling.MAPAddress, ceBinding.MAPAddress, l4{"tcp", sport, our, 20}, nil), actOK, "ce_6to4")
	check4(t, out, want4{src: meshAlias, dst: me, sport: sport, dport: our, proto: layers.IPProtocolTCP})
	// An error from the sibling about our packet to it: both its source
	// and the quoted destination are the alias.
	in := icmpErr6(t, sibling.MAPAddress, ceBinding.MAPAddress, 1, 4, 0, inner(t, ceBinding.MAPAddress, sibling.MAPAddress, l4{"udp", our, sport, 30}, 0))
	out = runCase(t, ce, "ce_ingress", in, actOK, "ce_6to4")
	checkErr4(t, out, wantErr{osrc: meshAlias, odst: me, isrc: me, idst: meshAlias, typ: 3, code: 3, isport: our, idport: sport, fullInner: true})
}

// TestMartianSource: the BR discards IPv4 packets from sources a router
// must not forward (RFC 7915 s4.1, RFC 1812 s5.3.7), silently and counted;
// the addresses quoted inside an ICMP error are translated all the same.
func TestMartianSource(t *testing.T) {
	me := ceBinding.IPv4.Addr()
	our := portOf(t, ceBinding.PortSet, 5)
	br := load(t, brConfig())
	for _, src := range []string{"0.1.2.3", "127.0.0.1", "224.0.0.5", "239.255.255.250", "240.0.0.1", "255.255.255.255"} {
		t.Run(src, func(t *testing.T) {
			in := pkt4(t, netip.MustParseAddr(src), me, l4{"udp", 53, our, 20}, nil)
			runCase(t, br, "br_ingress4", in, actShot, "src_martian")
		})
	}
	t.Run("edges are unicast", func(t *testing.T) {
		for _, src := range []string{"1.0.0.1", "126.255.255.255", "128.0.0.1", "223.255.255.254"} {
			in := pkt4(t, netip.MustParseAddr(src), me, l4{"udp", 53, our, 20}, nil)
			runCase(t, br, "br_ingress4", in, actOK, "br_4to6")
		}
	})
	t.Run("inside an icmp error", func(t *testing.T) {
		lo := netip.MustParseAddr("127.0.0.1")
		in := icmpErr4(t, serverV4, me, 3, 1, 0, inner(t, me, lo, l4{"udp", our, 53, 20}, 0))
		out := runCase(t, br, "br_ingress4", in, actOK, "br_4to6")
		d, err := decodeL4(out)
		if err != nil || !d.has(layers.LayerTypeICMPv6) || len(d.icmp6.Payload) < 44 {
			t.Fatalf("not an ICMPv6 error: %v", err)
		}
		inner := d.icmp6.Payload[4:]
		if got, want := netip.AddrFrom16([16]byte(inner[24:40])), mapt.Embed(dmr, lo); got != want {
			t.Errorf("quoted destination %v, want %v", got, want)
		}
	})
}

// TestTruncated: frames cut short are dropped and counted: an IPv6
// payload length beyond the frame, an IPv4 total length beyond it (also on
// the BR's path to its stack). Headers cut short, which BPF_PROG_TEST_RUN
// refuses to build an skb from, are TestNetnsTruncated's.
func TestTruncated(t *testing.T) {
	me := ceBinding.IPv4.Addr()
	our := portOf(t, ceBinding.PortSet, 5)
	br := load(t, brConfig())
	local := brConfig()
	local.Local, local.IPv6Side.MTU = Link{Ifindex: 1, L3: true}, 1400
	brLocal := load(t, local)
	ce := load(t, ceConfig())
	in6 := pkt6(t, ceBinding.MAPAddress, srvMAP, l4{"udp", our, 53, 100}, nil)
	in4 := pkt4(t, serverV4, me, l4{"udp", 53, our, 100}, nil)
	frag := pkt4(t, serverV4, me, l4{"udp", 53, our, 100}, func(ip *layers.IPv4) { ip.Flags = layers.IPv4MoreFragments })
	for _, c := range []struct {
		name string
		tr   *Translator
		prog string
		in   []byte
	}{
		{"br: ipv6 payload beyond the frame", br, "br_ingress6", in6[:len(in6)-10]},
		{"ce: ipv6 payload beyond the frame", ce, "ce_ingress", pkt6(t, srvMAP, ceBinding.MAPAddress, l4{"udp", 53, our, 100}, nil)[:len(in6)-10]},
		{"br: ipv4 total length beyond the frame", br, "br_ingress4", in4[:len(in4)-10]},
		{"br with local device: ipv4 total length beyond the frame", brLocal, "br_ingress4", in4[:len(in4)-10]},
		{"br with local device: fragment cut", brLocal, "br_ingress4", frag[:len(frag)-10]},
	} {
		t.Run(c.name, func(t *testing.T) { runCase(t, c.tr, c.prog, c.in, actShot, "truncated") })
	}
	runCase(t, brLocal, "br_ingress4", frag, actOK, "br_via_stack")
}

// dsOf decodes a translated packet (every checksum checked) and returns
// its DS field and, for an ICMP error, the quoted packet's (else -1).
func dsOf(t *testing.T, out []byte) (outer, inner int) {
	t.Helper()
	p := decode(t, out)
	inner = -1
	if ip, ok := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6); ok {
		outer = int(ip.TrafficClass)
		if ic, ok := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6); ok && ic.TypeCode.Type() < 128 {
			in := gopacket.NewPacket(ic.Payload[4:], layers.LayerTypeIPv6, gopacket.Default)
			inner = int(layerOf[*layers.IPv6](t, in, layers.LayerTypeIPv6, "the inner packet").TrafficClass)
		}
		return outer, inner
	}
	ip := layerOf[*layers.IPv4](t, p, layers.LayerTypeIPv4, "output")
	outer = int(ip.TOS)
	if ic, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); ok && ic.TypeCode.Type() == 3 {
		in := gopacket.NewPacket(ic.Payload, layers.LayerTypeIPv4, gopacket.Default)
		inner = int(layerOf[*layers.IPv4](t, in, layers.LayerTypeIPv4, "the inner packet").TOS)
	}
	return outer, inner
}

// TestDSField covers RFC 7915 s4.1 and s5.1's option to set the DS field
// instead of copying it: Config.TrafficClass on every 4->6 packet,
// Config.TOS on every 6->4 one, the packets quoted in ICMP errors too
// (translated like any packet, s4.3, s5.3), and both on the BR's hairpin,
// whose IPv4 leg they would have passed. The inputs all carry 0x28
// (check4, check6: copied by default). An Update back to the default
// copies again.
func TestDSField(t *testing.T) {
	set := func(c Config, tc, tos mapt.DSField) Config { c.TrafficClass, c.TOS = tc, tos; return c }
	zero, ef := mapt.DSField{Set: true}, mapt.DSField{Set: true, Value: 0xb8}
	ce := load(t, set(ceConfig(), zero, ef))
	br := load(t, set(brConfig(), zero, ef))
	brTOS := load(t, set(brConfig(), mapt.DSField{}, ef))

	me := ceBinding.IPv4.Addr()
	my6 := ceBinding.MAPAddress
	our := portOf(t, ceBinding.PortSet, 7)
	peerPort, peerMAP := peerCE(t, 2)
	router := netip.MustParseAddr("203.0.113.254")
	for _, tc := range []struct {
		name         string
		tr           *Translator
		to6          bool // the 4->6 program, else 6->4
		in           []byte
		ret          uint32
		outer, inner int
	}{
		{"ce 4->6", ce, true, pkt4(t, me, serverV4, l4{"udp", our, 4053, 20}, nil), actRedirect, 0, -1},
		{"ce 6->4", ce, false, pkt6(t, srvMAP, my6, l4{"tcp", 443, our, 20}, nil), actOK, 0xb8, -1},
		{"ce 4->6 error", ce, true, icmpErr4(t, me, serverV4, 3, 3, 0, inner(t, serverV4, me, l4{"udp", 4053, our, 30}, 0)), actRedirect, 0, 0},
		{"ce 6->4 error", ce, false, icmpErr6(t, srvMAP, my6, 1, 4, 0, inner(t, my6, srvMAP, l4{"udp", our, 4053, 30}, 0)), actOK, 0xb8, 0xb8},
		{"br 6->4", br, false, pkt6(t, my6, srvMAP, l4{"udp", our, 4053, 20}, nil), actOK, 0xb8, -1},
		{"br 4->6", br, true, pkt4(t, serverV4, me, l4{"tcp", 443, our, 20}, nil), actOK, 0, -1},
		{"br 4->6 error", br, true, icmpErr4(t, router, me, 3, 3, 0, inner(t, me, serverV4, l4{"udp", our, 4053, 30}, 0)), actOK, 0, 0},
		{"br 6->4 error", br, false, icmpErr6(t, my6, srvMAP, 1, 4, 0, inner(t, srvMAP, my6, l4{"udp", 4053, our, 30}, 0)), actOK, 0xb8, 0xb8},
		// The hairpin: TOS set, then the Traffic Class from it.
		{"br hairpin", br, false, pkt6(t, my6, mapt.Embed(dmr, peerV4), l4{"tcp", our, peerPort, 10}, nil), actOK, 0, -1},
		{"br hairpin, tos only", brTOS, false, pkt6(t, my6, mapt.Embed(dmr, peerV4), l4{"tcp", our, peerPort, 10}, nil), actOK, 0xb8, -1},
		{"br hairpin error, tos only", brTOS, false, icmpErr6(t, peerMAP, mapt.Embed(dmr, me), 1, 4, 0, inner(t, mapt.Embed(dmr, me), peerMAP, l4{"udp", our, peerPort, 30}, 0)), actOK, 0xb8, 0x28},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prog := tc.tr.Prog6to4()
			if tc.to6 {
				prog = tc.tr.Prog4to6()
			}
			ret, out := run(t, prog, tc.in)
			if ret != tc.ret {
				t.Fatalf("verdict %d, want %d", ret, tc.ret)
			}
			outer, inner := dsOf(t, out)
			if outer != tc.outer || inner != tc.inner {
				t.Errorf("DS field %#x, inner %#x; want %#x, %#x", outer, inner, tc.outer, tc.inner)
			}
		})
	}

	t.Run("update back to copy", func(t *testing.T) {
		if err := ce.Update(ceConfig()); err != nil {
			t.Fatal(err)
		}
		for _, in := range [][]byte{pkt4(t, me, serverV4, l4{"udp", our, 4053, 20}, nil), pkt6(t, srvMAP, my6, l4{"tcp", 443, our, 20}, nil)} {
			prog, want := ce.Prog6to4(), uint32(actOK)
			if in[12] == 0x08 { // IPv4: the uplink's egress
				prog, want = ce.Prog4to6(), actRedirect
			}
			ret, out := run(t, prog, in)
			if ret != want {
				t.Fatalf("verdict %d, want %d", ret, want)
			}
			if ds, _ := dsOf(t, out); ds != 0x28 {
				t.Errorf("DS field %#x after the update, want 0x28 (copied)", ds)
			}
		}
	})
}
