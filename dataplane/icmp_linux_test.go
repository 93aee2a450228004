package dataplane

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/mapt-go/mapt/mapt"
)

// inner serializes the IP packet (IPv4 or IPv6 by the addresses'
// family) carried in an ICMP error, cut to keep bytes (0: whole).
func inner(t testing.TB, src, dst netip.Addr, l l4, keep int) []byte {
	t.Helper()
	_, ls := ipPacket(t, src, dst, l)
	b := serialize(t, ls...)
	if keep > 0 && keep < len(b) {
		b = b[:keep]
	}
	return b
}

// innerOpts is inner for an IPv4 packet with options.
func innerOpts(t testing.TB, src, dst netip.Addr, l l4, opts ...layers.IPv4Option) []byte {
	t.Helper()
	ip, ls := ipPacket(t, src, dst, l)
	ip.(*layers.IPv4).Options = opts
	return serialize(t, ls...)
}

// icmpErr4 builds an ICMPv4 error; rest is header bytes 4-7.
func icmpErr4(t testing.TB, src, dst netip.Addr, typ, code uint8, rest uint32, inner []byte) []byte {
	ip := ip4(src, dst)
	ip.Protocol = layers.IPProtocolICMPv4
	ic := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, code), Id: uint16(rest >> 16), Seq: uint16(rest)}
	return serialize(t, ether(false), ip, ic, gopacket.Payload(inner))
}

// icmpErrOpts is a port unreachable whose outer IPv4 header has options.
func icmpErrOpts(t testing.TB, src, dst netip.Addr, opts []layers.IPv4Option, inner []byte) []byte {
	ip := ip4(src, dst)
	ip.Protocol = layers.IPProtocolICMPv4
	ip.Options = opts
	ic := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 3)}
	return serialize(t, ether(false), ip, ic, gopacket.Payload(inner))
}

// routerAlert and lsrr are IPv4 options (RFC 2113, RFC 791): a loose
// source route whose pointer is still inside it is unexpired.
var (
	routerAlert = layers.IPv4Option{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}}
	lsrr        = func(ptr byte) layers.IPv4Option {
		return layers.IPv4Option{OptionType: 131, OptionLength: 7, OptionData: []byte{ptr, 198, 51, 100, 1}}
	}
)

func icmpErr6(t testing.TB, src, dst netip.Addr, typ, code uint8, rest uint32, inner []byte) []byte {
	ip := ip6(src, dst)
	ip.NextHeader = layers.IPProtocolICMPv6
	ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, code)}
	ic.SetNetworkLayerForChecksum(ip)
	payload := binary.BigEndian.AppendUint32(nil, rest)
	return serialize(t, ether(true), ip, ic, gopacket.Payload(append(payload, inner...)))
}

// longDestOpts is a Destination Options header of n bytes (a multiple
// of 8) padded with one PadN option.
func longDestOpts(n int) []byte {
	h := make([]byte, n)
	h[0], h[1], h[2], h[3] = 60, byte(n/8-1), 1, byte(n-4)
	return h
}

// icmpErr6Ext is icmpErr6 with extension headers between the outer IPv6
// header and the ICMPv6 header (extChain).
func icmpErr6Ext(t testing.TB, src, dst netip.Addr, typ, code uint8, inner []byte, exts ...[]byte) []byte {
	ip := ip6(src, dst)
	ip.NextHeader = layers.IPProtocolICMPv6
	ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, code)}
	ic.SetNetworkLayerForChecksum(ip)
	body := serialize(t, ic, gopacket.Payload(append(make([]byte, 4), inner...)))
	next, chain := extChain(byte(layers.IPProtocolICMPv6), exts...)
	ip.NextHeader = layers.IPProtocol(next)
	return serialize(t, ether(true), ip, gopacket.Payload(append(chain, body...)))
}

// wantErr is the expected translated error: outer and inner addresses,
// type/code, header bytes 4-7, and the inner transport ports.
type wantErr struct {
	osrc, odst, isrc, idst netip.Addr
	typ, code              uint8
	rest                   uint32
	isport, idport         uint16
	fullInner              bool // the inner transport checksum can be verified
	len                    int  // total length of the translated packet, if not 0
}

func checkErr6(t *testing.T, out []byte, w wantErr) {
	t.Helper()
	p := decode(t, out)
	ip := layerOf[*layers.IPv6](t, p, layers.LayerTypeIPv6, "output")
	checkAddrs(t, "outer", ip.SrcIP, ip.DstIP, w.osrc, w.odst)
	if int(ip.Length) != len(ip.Payload) {
		t.Errorf("payload length %d, actual %d", ip.Length, len(ip.Payload))
	}
	if w.len != 0 && len(out)-14 != w.len {
		t.Errorf("packet is %d bytes, want %d", len(out)-14, w.len)
	}
	ic := layerOf[*layers.ICMPv6](t, p, layers.LayerTypeICMPv6, "output")
	if ic.TypeCode.Type() != w.typ || ic.TypeCode.Code() != w.code {
		t.Errorf("icmpv6 %v, want %d/%d", ic.TypeCode, w.typ, w.code)
	}
	if rest := binary.BigEndian.Uint32(ic.Payload[:4]); rest != w.rest {
		t.Errorf("icmpv6 bytes 4-7 %#x, want %#x", rest, w.rest)
	}
	in := gopacket.NewPacket(ic.Payload[4:], layers.LayerTypeIPv6, gopacket.Default)
	iip := layerOf[*layers.IPv6](t, in, layers.LayerTypeIPv6, "the inner packet")
	checkAddrs(t, "inner", iip.SrcIP, iip.DstIP, w.isrc, w.idst)
	if iip.HopLimit != 33 || iip.TrafficClass != 0x28 {
		t.Errorf("inner hop limit %d tc %#x, want 33 0x28", iip.HopLimit, iip.TrafficClass)
	}
	checkInnerPorts(t, in, ic.Payload[4+40:], w)
}

func checkErr4(t *testing.T, out []byte, w wantErr) {
	t.Helper()
	p := decode(t, out)
	ip := layerOf[*layers.IPv4](t, p, layers.LayerTypeIPv4, "output")
	checkAddrs(t, "outer", ip.SrcIP, ip.DstIP, w.osrc, w.odst)
	if int(ip.Length) != len(ip.Contents)+len(ip.Payload) {
		t.Errorf("total length %d, actual %d", ip.Length, len(ip.Contents)+len(ip.Payload))
	}
	ic := layerOf[*layers.ICMPv4](t, p, layers.LayerTypeICMPv4, "output")
	if ic.TypeCode.Type() != w.typ || ic.TypeCode.Code() != w.code {
		t.Errorf("icmpv4 %v, want %d/%d", ic.TypeCode, w.typ, w.code)
	}
	if rest := uint32(ic.Id)<<16 | uint32(ic.Seq); rest != w.rest {
		t.Errorf("icmpv4 bytes 4-7 %#x, want %#x", rest, w.rest)
	}
	in := gopacket.NewPacket(ic.Payload, layers.LayerTypeIPv4, gopacket.Default)
	iip := layerOf[*layers.IPv4](t, in, layers.LayerTypeIPv4, "the inner packet")
	checkAddrs(t, "inner", iip.SrcIP, iip.DstIP, w.isrc, w.idst)
	if iip.TTL != 33 || iip.TOS != 0x28 {
		t.Errorf("inner ttl %d tos %#x, want 33 0x28", iip.TTL, iip.TOS)
	}
	checkInnerPorts(t, in, ic.Payload[20:], w)
}

// checkInnerPorts checks the inner ports; l4 is the raw inner transport
// header, for inner packets too short for gopacket to decode.
func checkInnerPorts(t *testing.T, in gopacket.Packet, l4 []byte, w wantErr) {
	t.Helper()
	if w.fullInner {
		if el := in.ErrorLayer(); el != nil {
			t.Fatalf("inner packet does not decode: %v", el.Error())
		}
		verifyChecksums(t, in)
	}
	var sp, dp uint16
	if w.fullInner {
		sp, dp = ports(t, in)
	} else { // gopacket keeps a zero layer for a cut header
		if len(l4) < 8 {
			t.Fatalf("inner transport header missing:\n%s", in.Dump())
		}
		sp, dp = binary.BigEndian.Uint16(l4), binary.BigEndian.Uint16(l4[2:])
	}
	if sp != w.isport || dp != w.idport {
		t.Errorf("inner ports %d>%d, want %d>%d", sp, dp, w.isport, w.idport)
	}
}

// check checks a translated ICMP error of the family of its outer
// source: checkErr6 or checkErr4.
func (w *wantErr) check(t *testing.T, out []byte) {
	t.Helper()
	if w.osrc.Is6() {
		checkErr6(t, out, *w)
	} else {
		checkErr4(t, out, *w)
	}
}

// TestCEICMPErrors4to6: errors from the LAN (after NAT) about packets that
// came from outside, translated with their inner packet (RFC 7915 s4.2-4.3).
func TestCEICMPErrors4to6(t *testing.T) {
	tr := load(t, ceConfig())
	me := ceBinding.IPv4.Addr()
	our := portOf(t, ceBinding.PortSet, 9)
	my6 := ceBinding.MAPAddress
	udpIn := inner(t, serverV4, me, l4{"udp", 4053, our, 30}, 0)
	tcpIn := inner(t, serverV4, me, l4{"tcp", 443, our, 200}, 28) // 8 bytes of TCP
	echoIn := inner(t, serverV4, me, l4{"echo-req", our, 0, 20}, 0)
	runCases(t, tr, tr.Prog4to6(), []xlatCase{
		{"port unreachable", icmpErr4(t, me, serverV4, 3, 3, 0, udpIn), actRedirect, "ce_4to6",
			&wantErr{osrc: my6, odst: srvMAP, isrc: srvMAP, idst: my6, typ: 1, code: 4, isport: 4053, idport: our, fullInner: true}},
		{"host unreachable", icmpErr4(t, me, serverV4, 3, 1, 0, udpIn), actRedirect, "ce_4to6",
			&wantErr{osrc: my6, odst: srvMAP, isrc: srvMAP, idst: my6, typ: 1, code: 0, isport: 4053, idport: our, fullInner: true}},
		{"admin prohibited", icmpErr4(t, me, serverV4, 3, 13, 0, udpIn), actRedirect, "ce_4to6",
			&wantErr{osrc: my6, odst: srvMAP, isrc: srvMAP, idst: my6, typ: 1, code: 1, isport: 4053, idport: our, fullInner: true}},
		{"protocol unreachable", icmpErr4(t, me, serverV4, 3, 2, 0, udpIn), actRedirect, "ce_4to6",
			&wantErr{osrc: my6, odst: srvMAP, isrc: srvMAP, idst: my6, typ: 4, code: 1, rest: 6, isport: 4053, idport: our, fullInner: true}},
		{"fragmentation needed: mtu + 20", icmpErr4(t, me, serverV4, 3, 4, 1400, tcpIn), actRedirect, "ce_4to6",
			&wantErr{osrc: my6, odst: srvMAP, isrc: srvMAP, idst: my6, typ: 2, code: 0, rest: 1420, isport: 443, idport: our}},
		{"time exceeded, inner echo", icmpErr4(t, me, serverV4, 11, 0, 0, echoIn), actRedirect, "ce_4to6",
			&wantErr{osrc: my6, odst: srvMAP, isrc: srvMAP, idst: my6, typ: 3, code: 0, isport: our, idport: our, fullInner: true}},
		{"parameter problem: protocol pointer", icmpErr4(t, me, serverV4, 12, 0, 9<<24, udpIn), actRedirect, "ce_4to6",
			&wantErr{osrc: my6, odst: srvMAP, isrc: srvMAP, idst: my6, typ: 4, code: 0, rest: 6, isport: 4053, idport: our, fullInner: true}},
		{"parameter problem: untranslatable pointer", icmpErr4(t, me, serverV4, 12, 0, 10<<24, udpIn), actShot, "icmp_type", nil},
		{"source quench", icmpErr4(t, me, serverV4, 4, 0, 0, udpIn), actShot, "icmp_type", nil},
		// RFC 7915 s4.3 and s4.1: translated like any packet, options left out.
		{"outer ipv4 options", icmpErrOpts(t, me, serverV4, []layers.IPv4Option{routerAlert}, udpIn), actRedirect, "ce_4to6",
			&wantErr{osrc: my6, odst: srvMAP, isrc: srvMAP, idst: my6, typ: 1, code: 4, isport: 4053, idport: our, fullInner: true, len: 40 + 8 + len(udpIn) + 20}},
		{"outer expired source route", icmpErrOpts(t, me, serverV4, []layers.IPv4Option{lsrr(8), {OptionType: 1}}, udpIn), actRedirect, "ce_4to6",
			&wantErr{osrc: my6, odst: srvMAP, isrc: srvMAP, idst: my6, typ: 1, code: 4, isport: 4053, idport: our, fullInner: true, len: 40 + 8 + len(udpIn) + 20}},
		// An unexpired source route drops it (s4.1), with no error about an error.
		{"outer unexpired source route", icmpErrOpts(t, me, serverV4, []layers.IPv4Option{lsrr(4), {OptionType: 1}}, udpIn), actShot, "ipv4_options", nil},
		// The packet inside is translated like one, too (s4.3): its
		// options, even a source route, are left out; 40 bytes of them
		// make the inner header no longer at all.
		{"inner ipv4 options", icmpErr4(t, me, serverV4, 3, 3, 0, innerOpts(t, serverV4, me, l4{"udp", 4053, our, 30}, routerAlert, lsrr(4), layers.IPv4Option{OptionType: 1})), actRedirect, "ce_4to6",
			&wantErr{osrc: my6, odst: srvMAP, isrc: srvMAP, idst: my6, typ: 1, code: 4, isport: 4053, idport: our, fullInner: true, len: 40 + 8 + 40 + 8 + 30}},
		{"inner ipv4 options, 40 bytes", icmpErr4(t, me, serverV4, 3, 3, 0, innerOpts(t, serverV4, me, l4{"udp", 4053, our, 30}, layers.IPv4Option{OptionType: 7, OptionLength: 39, OptionData: append([]byte{4}, make([]byte, 36)...)}, layers.IPv4Option{OptionType: 0})), actRedirect, "ce_4to6",
			&wantErr{osrc: my6, odst: srvMAP, isrc: srvMAP, idst: my6, typ: 1, code: 4, isport: 4053, idport: our, fullInner: true, len: 40 + 8 + 40 + 8 + 30}},
		{"inner ipv4 options, both headers", icmpErrOpts(t, me, serverV4, []layers.IPv4Option{routerAlert}, innerOpts(t, serverV4, me, l4{"tcp", 443, our, 40}, routerAlert)), actRedirect, "ce_4to6",
			&wantErr{osrc: my6, odst: srvMAP, isrc: srvMAP, idst: my6, typ: 1, code: 4, isport: 443, idport: our, fullInner: true, len: 40 + 8 + 40 + 20 + 40}},
		{"inner ipv4 options cut short", icmpErr4(t, me, serverV4, 3, 3, 0, innerOpts(t, serverV4, me, l4{"udp", 4053, our, 30}, routerAlert, lsrr(4), layers.IPv4Option{OptionType: 1})[:30]), actShot, "truncated", nil},
		{"redirect", icmpErr4(t, me, serverV4, 5, 1, 0, udpIn), actShot, "icmp_type", nil},
		{"precedence violation", icmpErr4(t, me, serverV4, 3, 14, 0, udpIn), actShot, "icmp_type", nil},
		{"inner port not ours", icmpErr4(t, me, serverV4, 3, 3, 0, inner(t, serverV4, me, l4{"udp", 4053, notIn(t, ceBinding.PortSet), 30}, 0)), actShot, "src_not_ours", nil},
		{"error about an error", icmpErr4(t, me, serverV4, 3, 3, 0, icmpErr4(t, serverV4, me, 3, 3, 0, udpIn)[14:]), actShot, "icmp_type", nil},
		{"inner truncated", icmpErr4(t, me, serverV4, 3, 3, 0, udpIn[:24]), actShot, "truncated", nil},
		// 1456-byte ICMPv4 error: 1496 bytes as ICMPv6, cut to 1280
		// (RFC 4443 s2.4(c)) with the checksum still right.
		{"cut to 1280 bytes", icmpErr4(t, me, serverV4, 3, 3, 0, inner(t, serverV4, me, l4{"udp", 4053, our, 1400}, 0)), actRedirect, "ce_4to6",
			&wantErr{osrc: my6, odst: srvMAP, isrc: srvMAP, idst: my6, typ: 1, code: 4, isport: 4053, idport: our, len: 1280}},
	})
}

// TestCEICMPErrors6to4: errors from the BR side about packets we sent.
func TestCEICMPErrors6to4(t *testing.T) {
	tr := load(t, ceConfig())
	me := ceBinding.IPv4.Addr()
	our := portOf(t, ceBinding.PortSet, 11)
	my6 := ceBinding.MAPAddress
	router := netip.MustParseAddr("203.0.113.254")
	udpIn := inner(t, my6, srvMAP, l4{"udp", our, 4053, 30}, 0)
	tcpIn := inner(t, my6, srvMAP, l4{"tcp", our, 443, 1200}, 48+8)
	echoIn := inner(t, my6, srvMAP, l4{"echo-req", our, 0, 20}, 0)
	runCases(t, tr, tr.Prog6to4(), []xlatCase{
		{"port unreachable", icmpErr6(t, srvMAP, my6, 1, 4, 0, udpIn), actOK, "ce_6to4",
			&wantErr{osrc: serverV4, odst: me, isrc: me, idst: serverV4, typ: 3, code: 3, isport: our, idport: 4053, fullInner: true}},
		{"no route", icmpErr6(t, srvMAP, my6, 1, 0, 0, udpIn), actOK, "ce_6to4",
			&wantErr{osrc: serverV4, odst: me, isrc: me, idst: serverV4, typ: 3, code: 1, isport: our, idport: 4053, fullInner: true}},
		{"admin prohibited", icmpErr6(t, srvMAP, my6, 1, 1, 0, udpIn), actOK, "ce_6to4",
			&wantErr{osrc: serverV4, odst: me, isrc: me, idst: serverV4, typ: 3, code: 10, isport: our, idport: 4053, fullInner: true}},
		{"packet too big from the dmr: mtu - 20", icmpErr6(t, mapt.Embed(dmr, router), my6, 2, 0, 1400, tcpIn), actOK, "ce_6to4",
			&wantErr{osrc: router, odst: me, isrc: me, idst: serverV4, typ: 3, code: 4, rest: 1380, isport: our, idport: 443}},
		{"packet too big from an ipv6 router", icmpErr6(t, netip.MustParseAddr("2001:db9:f::1"), my6, 2, 0, 1400, tcpIn), actOK, "ce_6to4",
			&wantErr{osrc: netip.MustParseAddr("192.0.0.8"), odst: me, isrc: me, idst: serverV4, typ: 3, code: 4, rest: 1380, isport: our, idport: 443}},
		{"time exceeded, inner echo", icmpErr6(t, mapt.Embed(dmr, router), my6, 3, 0, 0, echoIn), actOK, "ce_6to4",
			&wantErr{osrc: router, odst: me, isrc: me, idst: serverV4, typ: 11, code: 0, isport: our, idport: our, fullInner: true}},
		{"parameter problem: hop limit pointer", icmpErr6(t, srvMAP, my6, 4, 0, 7, udpIn), actOK, "ce_6to4",
			&wantErr{osrc: serverV4, odst: me, isrc: me, idst: serverV4, typ: 12, code: 0, rest: 8 << 24, isport: our, idport: 4053, fullInner: true}},
		{"unrecognised next header", icmpErr6(t, srvMAP, my6, 4, 1, 6, udpIn), actOK, "ce_6to4",
			&wantErr{osrc: serverV4, odst: me, isrc: me, idst: serverV4, typ: 3, code: 2, isport: our, idport: 4053, fullInner: true}},
		// RFC 7915 s5.3 and s5.1: translated like any packet, the
		// extension headers left out.
		{"outer destination options", icmpErr6Ext(t, srvMAP, my6, 1, 4, udpIn, destOpts()), actOK, "ce_6to4",
			&wantErr{osrc: serverV4, odst: me, isrc: me, idst: serverV4, typ: 3, code: 3, isport: our, idport: 4053, fullInner: true, len: 20 + 8 + len(udpIn) - 20}},
		{"outer hop-by-hop, routing done, destination options", icmpErr6Ext(t, srvMAP, my6, 1, 4, udpIn, hbh(), routing(0), destOpts()), actOK, "ce_6to4",
			&wantErr{osrc: serverV4, odst: me, isrc: me, idst: serverV4, typ: 3, code: 3, isport: our, idport: 4053, fullInner: true, len: 20 + 8 + len(udpIn) - 20}},
		// Segments left drops it, with no error about an error (RFC 4443
		// s2.4(e)): not icmp_sent.
		{"outer routing header with segments left", icmpErr6Ext(t, srvMAP, my6, 1, 4, udpIn, routing(1)), actShot, "ipv6_exthdr", nil},
		// The packet inside too (s5.3): its extension headers are left
		// out, up to 64 bytes of them; one that could not be is dropped.
		{"inner hop-by-hop", icmpErr6(t, srvMAP, my6, 1, 4, 0, ext6(t, my6, srvMAP, our, 4053, hbh())[14:]), actOK, "ce_6to4",
			&wantErr{osrc: serverV4, odst: me, isrc: me, idst: serverV4, typ: 3, code: 3, isport: our, idport: 4053, fullInner: true, len: 20 + 8 + 20 + 8 + 8}},
		{"inner hop-by-hop, destination options, routing done, both headers", icmpErr6Ext(t, srvMAP, my6, 1, 4, ext6(t, my6, srvMAP, our, 4053, hbh(), destOpts(), routing(0))[14:], destOpts()), actOK, "ce_6to4",
			&wantErr{osrc: serverV4, odst: me, isrc: me, idst: serverV4, typ: 3, code: 3, isport: our, idport: 4053, fullInner: true, len: 20 + 8 + 20 + 8 + 8}},
		{"inner extension headers of 64 bytes", icmpErr6(t, srvMAP, my6, 1, 4, 0, ext6(t, my6, srvMAP, our, 4053, longDestOpts(56), destOpts())[14:]), actOK, "ce_6to4",
			&wantErr{osrc: serverV4, odst: me, isrc: me, idst: serverV4, typ: 3, code: 3, isport: our, idport: 4053, fullInner: true, len: 20 + 8 + 20 + 8 + 8}},
		{"inner extension headers of 72 bytes", icmpErr6(t, srvMAP, my6, 1, 4, 0, ext6(t, my6, srvMAP, our, 4053, longDestOpts(72))[14:]), actShot, "ipv6_exthdr", nil},
		{"inner routing header with segments left", icmpErr6(t, srvMAP, my6, 1, 4, 0, ext6(t, my6, srvMAP, our, 4053, routing(1))[14:]), actShot, "ipv6_exthdr", nil},
		{"inner hop-by-hop not first", icmpErr6(t, srvMAP, my6, 1, 4, 0, ext6(t, my6, srvMAP, our, 4053, destOpts(), hbh())[14:]), actShot, "ipv6_exthdr", nil},
		{"inner extension header cut short", icmpErr6(t, srvMAP, my6, 1, 4, 0, ext6(t, my6, srvMAP, our, 4053, longDestOpts(56))[14:40+16]), actShot, "truncated", nil},
		{"packet too big below the ipv4 minimum", icmpErr6(t, srvMAP, my6, 2, 0, 80, tcpIn), actShot, "icmp_type", nil},
		{"parameter problem: flow label pointer", icmpErr6(t, srvMAP, my6, 4, 0, 2, udpIn), actShot, "icmp_type", nil},
		{"inner source port not ours", icmpErr6(t, srvMAP, my6, 1, 4, 0, inner(t, my6, srvMAP, l4{"udp", notIn(t, ceBinding.PortSet), 4053, 30}, 0)), actShot, "dst_port", nil},
		{"inner source not our address", icmpErr6(t, srvMAP, my6, 1, 4, 0, inner(t, srvMAP, srvMAP, l4{"udp", our, 4053, 30}, 0)), actShot, "dst_port", nil},
	})
}

// TestBRICMPErrors: a CE reports on a packet from the Internet (6->4), and
// an IPv4 router reports on a CE's packet (4->6).
func TestBRICMPErrors(t *testing.T) {
	tr := load(t, brConfig())
	me := ceBinding.IPv4.Addr()
	our := portOf(t, ceBinding.PortSet, 21)
	my6 := ceBinding.MAPAddress
	router := netip.MustParseAddr("203.0.113.254")
	t.Run("6to4", func(t *testing.T) {
		runCases(t, tr, tr.Prog6to4(), []xlatCase{
			{"port unreachable from a ce", icmpErr6(t, my6, srvMAP, 1, 4, 0, inner(t, srvMAP, my6, l4{"udp", 4053, our, 30}, 0)), actOK, "br_6to4",
				&wantErr{osrc: me, odst: serverV4, isrc: serverV4, idst: me, typ: 3, code: 3, isport: 4053, idport: our, fullInner: true}},
			{"error about another ce's port", icmpErr6(t, my6, srvMAP, 1, 4, 0, inner(t, srvMAP, my6, l4{"udp", 4053, notIn(t, ceBinding.PortSet), 30}, 0)), actShot, "src_port", nil},
			{"port unreachable from a ce, inner destination options", icmpErr6(t, my6, srvMAP, 1, 4, 0, ext6(t, srvMAP, my6, 4053, our, destOpts())[14:]), actOK, "br_6to4",
				&wantErr{osrc: me, odst: serverV4, isrc: serverV4, idst: me, typ: 3, code: 3, isport: 4053, idport: our, fullInner: true, len: 20 + 8 + 20 + 8 + 8}},
			{"port unreachable from a ce, outer hop-by-hop", icmpErr6Ext(t, my6, srvMAP, 1, 4, inner(t, srvMAP, my6, l4{"udp", 4053, our, 30}, 0), hbh()), actOK, "br_6to4",
				&wantErr{osrc: me, odst: serverV4, isrc: serverV4, idst: me, typ: 3, code: 3, isport: 4053, idport: our, fullInner: true, len: 20 + 8 + 20 + 8 + 30}},
		})
	})
	t.Run("hairpin", func(t *testing.T) {
		// CE2 (the peer) reports port unreachable on a packet CE1 sent it
		// through the BR's hairpin; the error goes back the same way.
		peerPort, peerMAP := peerCE(t, 2)
		in := icmpErr6(t, peerMAP, mapt.Embed(dmr, me), 1, 4, 0, inner(t, mapt.Embed(dmr, me), peerMAP, l4{"udp", our, peerPort, 30}, 0))
		out := runCounted(t, tr, tr.Prog6to4(), in, actOK, "br_hairpin")
		checkErr6(t, out, wantErr{osrc: mapt.Embed(dmr, peerV4), odst: my6, isrc: my6, idst: mapt.Embed(dmr, peerV4),
			typ: 1, code: 4, isport: our, idport: peerPort, fullInner: true})
		// The same error about a port the reporting CE does not own.
		bad := icmpErr6(t, peerMAP, mapt.Embed(dmr, me), 1, 4, 0, inner(t, mapt.Embed(dmr, me), peerMAP, l4{"udp", our, our, 30}, 0))
		if ret, _ := run(t, tr.Prog6to4(), bad); ret != actShot {
			t.Errorf("error about another CE's port: verdict %d", ret)
		}
	})
	t.Run("4to6", func(t *testing.T) {
		runCases(t, tr, tr.Prog4to6(), []xlatCase{
			{"fragmentation needed to a ce", icmpErr4(t, router, me, 3, 4, 1400, inner(t, me, serverV4, l4{"tcp", our, 443, 1200}, 28)), actOK, "br_4to6",
				&wantErr{osrc: mapt.Embed(dmr, router), odst: my6, isrc: my6, idst: srvMAP, typ: 2, code: 0, rest: 1420, isport: our, idport: 443}},
			{"time exceeded to a ce", icmpErr4(t, router, me, 11, 0, 0, inner(t, me, serverV4, l4{"udp", our, 4053, 30}, 0)), actOK, "br_4to6",
				&wantErr{osrc: mapt.Embed(dmr, router), odst: my6, isrc: my6, idst: srvMAP, typ: 3, code: 0, isport: our, idport: 4053, fullInner: true}},
			{"error about a port of no ce", icmpErr4(t, router, me, 11, 0, 0, inner(t, me, serverV4, l4{"udp", 80, 4053, 30}, 0)), actShot, "dst_no_ce", nil},
			// MTU 0: the plateau below the packet's total length, its
			// options counted: 1494 bytes, plateau 1492 (RFC 1191 s7),
			// + 20 (without them 1490: 1006, raised to 1280).
			{"fragmentation needed to a ce, no mtu, inner options", icmpErr4(t, router, me, 3, 4, 0, innerOpts(t, me, serverV4, l4{"udp", our, 4053, 1462}, routerAlert)[:28+4]), actOK, "br_4to6",
				&wantErr{osrc: mapt.Embed(dmr, router), odst: my6, isrc: my6, idst: srvMAP, typ: 2, code: 0, rest: 1512, isport: our, idport: 4053, len: 40 + 8 + 40 + 8}},
			{"port unreachable to a ce, outer options", icmpErrOpts(t, router, me, []layers.IPv4Option{routerAlert, lsrr(8), {OptionType: 1}}, inner(t, me, serverV4, l4{"udp", our, 4053, 30}, 0)), actOK, "br_4to6",
				&wantErr{osrc: mapt.Embed(dmr, router), odst: my6, isrc: my6, idst: srvMAP, typ: 1, code: 4, isport: our, idport: 4053, fullInner: true, len: 40 + 8 + 40 + 8 + 30}},
		})
	})
}

// TestBRLocal: the BR's own ICMP errors, routed into a TUN device, are
// translated by br_local and sent out of the other side: Packet Too Big
// for an Internet packet that outgrew the IPv6 link, Time Exceeded for a
// CE's packet.
func TestBRLocal(t *testing.T) {
	tr := load(t, brConfig())
	me := ceBinding.IPv4.Addr()
	our := portOf(t, ceBinding.PortSet, 23)
	my6 := ceBinding.MAPAddress
	brV6 := netip.MustParseAddr("2001:db8:f::1")
	brV4 := netip.MustParseAddr("198.51.100.1")
	runCases(t, tr, tr.coll.Programs["br_local"], []xlatCase{
		{"packet too big to the dmr", icmpErr6(t, brV6, srvMAP, 2, 0, 1500, inner(t, srvMAP, my6, l4{"tcp", 443, our, 1400}, 48+8)), actRedirect, "br_6to4",
			&wantErr{osrc: netip.MustParseAddr("192.0.0.8"), odst: serverV4, isrc: serverV4, idst: me, typ: 3, code: 4, rest: 1480, isport: 443, idport: our}},
		{"time exceeded to a ce", icmpErr4(t, brV4, me, 11, 0, 0, inner(t, me, serverV4, l4{"udp", our, 4053, 30}, 0)), actRedirect, "br_4to6",
			&wantErr{osrc: mapt.Embed(dmr, brV4), odst: my6, isrc: my6, idst: srvMAP, typ: 3, code: 0, isport: our, idport: 4053, fullInner: true}},
		{"own ipv6 that is no error", pkt6(t, brV6, srvMAP, l4{"udp", 1, 2, 8}, nil), actShot, "local", nil},
		{"own ipv4 to no ce", pkt4(t, brV4, serverV4, l4{"udp", 1, 2, 8}, nil), actShot, "local", nil},
	})
}
