package dataplane

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/mapt-go/mapt/mapt"
)

// want6 is the expected result of a packet translated to IPv6.
type want6 struct {
	src, dst     netip.Addr
	sport, dport uint16
	next         layers.IPProtocol
	icmpType     uint8
}

func check6(t *testing.T, out []byte, w want6) {
	t.Helper()
	p := decodeFamily(t, out, true)
	ip := layerOf[*layers.IPv6](t, p, layers.LayerTypeIPv6, "output")
	checkAddrs(t, "ipv6", ip.SrcIP, ip.DstIP, w.src, w.dst)
	// RFC 7915 s4.1: traffic class = TOS, flow label 0, hop limit = TTL
	// (the stack of each node decrements it, not the translator).
	if ip.TrafficClass != 0x28 || ip.FlowLabel != 0 || ip.HopLimit != 33 {
		t.Errorf("tc %#x flow %#x hlim %d, want 0x28 0 33", ip.TrafficClass, ip.FlowLabel, ip.HopLimit)
	}
	if ip.NextHeader != w.next {
		t.Errorf("next header %v, want %v", ip.NextHeader, w.next)
	}
	if int(ip.Length) != len(ip.Payload) {
		t.Errorf("payload length %d, actual %d", ip.Length, len(ip.Payload))
	}
	checkPorts(t, p, w.sport, w.dport)
	if w.icmpType != 0 {
		ic := layerOf[*layers.ICMPv6](t, p, layers.LayerTypeICMPv6, "output")
		if ic.TypeCode.Type() != w.icmpType || ic.TypeCode.Code() != 0 {
			t.Errorf("icmpv6 %v, want type %d", ic.TypeCode, w.icmpType)
		}
	}
}

type want4 struct {
	src, dst     netip.Addr
	sport, dport uint16
	proto        layers.IPProtocol
	icmpType     uint8
	df           bool
}

func check4(t *testing.T, out []byte, w want4) {
	t.Helper()
	p := decodeFamily(t, out, false)
	ip := layerOf[*layers.IPv4](t, p, layers.LayerTypeIPv4, "output")
	checkAddrs(t, "ipv4", ip.SrcIP, ip.DstIP, w.src, w.dst)
	// RFC 7915 s5.1: TOS = traffic class, TTL = hop limit, no options,
	// DF only above 1260 bytes, never MF.
	if ip.TOS != 0x28 || ip.TTL != 33 || ip.IHL != 5 {
		t.Errorf("tos %#x ttl %d ihl %d, want 0x28 33 5", ip.TOS, ip.TTL, ip.IHL)
	}
	if ip.Protocol != w.proto {
		t.Errorf("protocol %v, want %v", ip.Protocol, w.proto)
	}
	if got := ip.Flags&layers.IPv4DontFragment != 0; got != w.df {
		t.Errorf("DF %v, want %v (length %d)", got, w.df, ip.Length)
	}
	if ip.Flags&layers.IPv4MoreFragments != 0 || ip.FragOffset != 0 {
		t.Errorf("fragment bits set: %v offset %d", ip.Flags, ip.FragOffset)
	}
	if int(ip.Length) != len(ip.Contents)+len(ip.Payload) {
		t.Errorf("total length %d, actual %d", ip.Length, len(ip.Contents)+len(ip.Payload))
	}
	checkPorts(t, p, w.sport, w.dport)
	if w.proto == layers.IPProtocolICMPv4 {
		ic := layerOf[*layers.ICMPv4](t, p, layers.LayerTypeICMPv4, "output")
		if ic.TypeCode.Type() != w.icmpType || ic.TypeCode.Code() != 0 {
			t.Errorf("icmpv4 %v, want type %d", ic.TypeCode, w.icmpType)
		}
	}
}

func (w *want6) check(t *testing.T, out []byte) { t.Helper(); check6(t, out, *w) }
func (w *want4) check(t *testing.T, out []byte) { t.Helper(); check4(t, out, *w) }

func mapV4(t *testing.T, r mapt.Rule, v4 netip.Addr, port uint16) netip.Addr {
	t.Helper()
	a, _, err := r.MapIPv4(v4, port)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestCE4to6 covers RFC 7599 s8.1 at the CE: source = our MAP address,
// destination = mesh peer via FMR or DMR-embedded, escaped sources dropped.
func TestCE4to6(t *testing.T) {
	tr := load(t, ceConfig())
	ps := ceBinding.PortSet
	me := ceBinding.IPv4.Addr()
	our := portOf(t, ps, 5)
	peerPort, peerMAP := peerCE(t, 3)
	fullV4 := netip.MustParseAddr("198.18.0.77")
	oneV4 := netip.MustParseAddr("203.0.113.5")
	onePort := portOf(t, mapt.PortSet{PortParams: ruleOne9.Params(), PSID: 9}, 2)

	runCases(t, tr, tr.Prog4to6(), []xlatCase{
		{"tcp to dmr", pkt4(t, me, serverV4, l4{"tcp", our, 443, 100}, nil), actRedirect, "ce_4to6",
			&want6{src: ceBinding.MAPAddress, dst: srvMAP, sport: our, dport: 443, next: layers.IPProtocolTCP}},
		{"udp to dmr", pkt4(t, me, serverV4, l4{"udp", our, 4053, 33}, nil), actRedirect, "ce_4to6",
			&want6{src: ceBinding.MAPAddress, dst: srvMAP, sport: our, dport: 4053, next: layers.IPProtocolUDP}},
		{"tcp 1500 bytes", pkt4(t, me, serverV4, l4{"tcp", our, 80, 1460}, nil), actRedirect, "ce_4to6",
			&want6{src: ceBinding.MAPAddress, dst: srvMAP, sport: our, dport: 80, next: layers.IPProtocolTCP}},
		{"echo request", pkt4(t, me, serverV4, l4{"echo-req", our, 0, 56}, nil), actRedirect, "ce_4to6",
			&want6{src: ceBinding.MAPAddress, dst: srvMAP, sport: our, dport: our, next: layers.IPProtocolICMPv6, icmpType: layers.ICMPv6TypeEchoRequest}},
		{"echo reply", pkt4(t, me, serverV4, l4{"echo-rep", our, 0, 8}, nil), actRedirect, "ce_4to6",
			&want6{src: ceBinding.MAPAddress, dst: srvMAP, sport: our, dport: our, next: layers.IPProtocolICMPv6, icmpType: layers.ICMPv6TypeEchoReply}},
		{"mesh peer via fmr", pkt4(t, me, peerV4, l4{"tcp", our, peerPort, 10}, nil), actRedirect, "ce_4to6",
			&want6{src: ceBinding.MAPAddress, dst: peerMAP, sport: our, dport: peerPort, next: layers.IPProtocolTCP}},
		{"mesh full-address rule", pkt4(t, me, fullV4, l4{"udp", our, 9999, 10}, nil), actRedirect, "ce_4to6",
			&want6{src: ceBinding.MAPAddress, dst: mapV4(t, ruleFull, fullV4, 9999), sport: our, dport: 9999, next: layers.IPProtocolUDP}},
		{"mesh shared 1:1 rule by psid", pkt4(t, me, oneV4, l4{"udp", our, onePort, 10}, nil), actRedirect, "ce_4to6",
			&want6{src: ceBinding.MAPAddress, dst: mapV4(t, ruleOne9, oneV4, onePort), sport: our, dport: onePort, next: layers.IPProtocolUDP}},
		{"mesh peer port in no set", pkt4(t, me, peerV4, l4{"tcp", our, 80, 10}, nil), actShot, "dst_no_ce", nil},
		{"source port outside set", pkt4(t, me, serverV4, l4{"tcp", notIn(t, ps), 443, 10}, nil), actShot, "src_not_ours", nil},
		{"echo id outside set", pkt4(t, me, serverV4, l4{"echo-req", notIn(t, ps), 0, 8}, nil), actShot, "src_not_ours", nil},
		{"source address not ours", pkt4(t, netip.MustParseAddr("192.0.2.19"), serverV4, l4{"tcp", our, 443, 10}, nil), actShot, "src_not_ours", nil},
		// RFC 7915 s4.1: options are left out of the translation...
		{"ipv4 options", pkt4(t, me, serverV4, l4{"tcp", our, 443, 10}, func(ip *layers.IPv4) {
			ip.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}}, {OptionType: 0}}
		}), actRedirect, "ce_4to6", &want6{src: ceBinding.MAPAddress, dst: srvMAP, sport: our, dport: 443, next: layers.IPProtocolTCP}},
		{"ipv4 options, fragment", pkt4(t, me, serverV4, l4{"udp", our, 4053, 16}, func(ip *layers.IPv4) {
			ip.Flags = layers.IPv4MoreFragments
			ip.Options = []layers.IPv4Option{{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}}}
		}), actRedirect, "ce_4to6", nil},
		// ...unless there is a source route.
		{"ipv4 source route", pkt4(t, me, serverV4, l4{"tcp", our, 443, 10}, func(ip *layers.IPv4) {
			ip.Options = []layers.IPv4Option{{OptionType: 131, OptionLength: 7, OptionData: []byte{4, 10, 0, 0, 1}}, {OptionType: 0}}
		}), actShot, "ipv4_options", nil},
		// RFC 7915 s4.1: only an unexpired route drops; the options
		// are walked, so data bytes that look like a route kind do not.
		{"ipv4 expired source route", pkt4(t, me, serverV4, l4{"tcp", our, 443, 10}, func(ip *layers.IPv4) {
			ip.Options = []layers.IPv4Option{{OptionType: 137, OptionLength: 7, OptionData: []byte{8, 10, 0, 0, 1}}, {OptionType: 0}}
		}), actRedirect, "ce_4to6", &want6{src: ceBinding.MAPAddress, dst: srvMAP, sport: our, dport: 443, next: layers.IPProtocolTCP}},
		{"ipv4 source route after nops", pkt4(t, me, serverV4, l4{"tcp", our, 443, 10}, func(ip *layers.IPv4) {
			ip.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 137, OptionLength: 11, OptionData: []byte{8, 10, 0, 0, 1, 10, 0, 0, 2}}, {OptionType: 0}}
		}), actShot, "ipv4_options", nil},
		{"ipv4 route kind in option data", pkt4(t, me, serverV4, l4{"tcp", our, 443, 10}, func(ip *layers.IPv4) {
			ip.Options = []layers.IPv4Option{{OptionType: 148, OptionLength: 4, OptionData: []byte{131, 137}}}
		}), actRedirect, "ce_4to6", &want6{src: ceBinding.MAPAddress, dst: srvMAP, sport: our, dport: 443, next: layers.IPProtocolTCP}},
		{"ipv4 route kind after end of list", setOptions(pkt4(t, me, serverV4, l4{"tcp", our, 443, 10}, func(ip *layers.IPv4) {
			ip.Options = []layers.IPv4Option{{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}}}
		}), 0, 131, 7, 4), actRedirect, "ce_4to6", &want6{src: ceBinding.MAPAddress, dst: srvMAP, sport: our, dport: 443, next: layers.IPProtocolTCP}},
		{"ipv4 option length beyond header", setOptions(pkt4(t, me, serverV4, l4{"tcp", our, 443, 10}, func(ip *layers.IPv4) {
			ip.Options = []layers.IPv4Option{{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}}}
		}), 1, 148, 9, 0), actShot, "bad_header", nil},
		{"ipv4 option length 0", setOptions(pkt4(t, me, serverV4, l4{"tcp", our, 443, 10}, func(ip *layers.IPv4) {
			ip.Options = []layers.IPv4Option{{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}}}
		}), 148, 0, 0, 0), actShot, "bad_header", nil},
		{"ipv4 source route without pointer", setOptions(pkt4(t, me, serverV4, l4{"tcp", our, 443, 10}, func(ip *layers.IPv4) {
			ip.Options = []layers.IPv4Option{{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}}}
		}), 1, 131, 2, 0), actShot, "bad_header", nil},
		{"ipv4 options, bad header checksum", corrupt(pkt4(t, me, serverV4, l4{"tcp", our, 443, 10}, func(ip *layers.IPv4) {
			ip.Options = []layers.IPv4Option{{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}}}
		}), 14+21), actShot, "bad_header", nil},
		{"icmp fragment", pkt4(t, me, serverV4, l4{"echo-req", our, 0, 10}, func(ip *layers.IPv4) { ip.Flags = layers.IPv4MoreFragments }), actShot, "fragment", nil},
		// RFC 7915 s4.5: IPv4 UDP without checksum gets one (gopacket
		// verifies it), up to 2048 bytes and unfragmented.
		{"udp zero checksum", zeroUDPChecksum(pkt4(t, me, serverV4, l4{"udp", our, 4053, 10}, nil)), actRedirect, "ce_4to6",
			&want6{src: ceBinding.MAPAddress, dst: srvMAP, sport: our, dport: 4053, next: layers.IPProtocolUDP}},
		{"udp zero checksum, odd 1001 bytes", zeroUDPChecksum(pkt4(t, me, serverV4, l4{"udp", our, 4053, 1001}, nil)), actRedirect, "ce_4to6",
			&want6{src: ceBinding.MAPAddress, dst: srvMAP, sport: our, dport: 4053, next: layers.IPProtocolUDP}},
		{"udp zero checksum, 2040 bytes", zeroUDPChecksum(pkt4(t, me, serverV4, l4{"udp", our, 4053, 2040}, nil)), actRedirect, "ce_4to6",
			&want6{src: ceBinding.MAPAddress, dst: srvMAP, sport: our, dport: 4053, next: layers.IPProtocolUDP}},
		{"udp zero checksum, too long", zeroUDPChecksum(pkt4(t, me, serverV4, l4{"udp", our, 4053, 2041}, nil)), actShot, "udp_zero_csum", nil},
		{"udp zero checksum, fragment", zeroUDPChecksum(pkt4(t, me, serverV4, l4{"udp", our, 4053, 16}, func(ip *layers.IPv4) { ip.Flags = layers.IPv4MoreFragments })), actShot, "udp_zero_csum", nil},
		{"icmp timestamp", icmpType4(t, me, 13), actShot, "icmp_type", nil},
		{"bad header checksum", corrupt(pkt4(t, me, serverV4, l4{"tcp", our, 443, 10}, nil), 14+10), actShot, "bad_header", nil},
		{"truncated", pkt4(t, me, serverV4, l4{"tcp", our, 443, 40}, nil)[:14+20+10], actShot, "truncated", nil},
		{"gre", pkt4(t, me, serverV4, l4{"udp", our, 4053, 10}, func(ip *layers.IPv4) { ip.Protocol = layers.IPProtocolGRE }), actShot, "proto", nil},
		{"not ipv4", pkt6(t, ceBinding.MAPAddress, srvMAP, l4{"tcp", our, 443, 10}, nil), actPass, "", nil},
	})
}

// TestCE6to4 covers RFC 7599 s8.2 at the CE: only our MAP address, source
// from the DMR or an FMR (with the PSID check), destination port in our set.
func TestCE6to4(t *testing.T) {
	tr := load(t, ceConfig())
	ps := ceBinding.PortSet
	me := ceBinding.IPv4.Addr()
	our := portOf(t, ps, 17)
	peerPort, peerMAP := peerCE(t, 9)
	otherMAP := mapV4(t, ruleA, netip.MustParseAddr("192.0.2.18"), portOf(t, mapt.PortSet{PortParams: ps.PortParams, PSID: 0x35}, 0))
	badIID := peerMAP.As16()
	badIID[15] ^= 1 // PSID in the interface ID no longer matches the EA bits

	runCases(t, tr, tr.Prog6to4(), []xlatCase{
		{"tcp from dmr", pkt6(t, srvMAP, ceBinding.MAPAddress, l4{"tcp", 443, our, 100}, nil), actOK, "ce_6to4",
			&want4{src: serverV4, dst: me, sport: 443, dport: our, proto: layers.IPProtocolTCP}},
		{"udp from dmr", pkt6(t, srvMAP, ceBinding.MAPAddress, l4{"udp", 4053, our, 40}, nil), actOK, "ce_6to4",
			&want4{src: serverV4, dst: me, sport: 4053, dport: our, proto: layers.IPProtocolUDP}},
		{"tcp 1500 bytes sets DF", pkt6(t, srvMAP, ceBinding.MAPAddress, l4{"tcp", 443, our, 1440}, nil), actOK, "ce_6to4",
			&want4{src: serverV4, dst: me, sport: 443, dport: our, proto: layers.IPProtocolTCP, df: true}},
		{"echo reply", pkt6(t, srvMAP, ceBinding.MAPAddress, l4{"echo-rep", our, 0, 56}, nil), actOK, "ce_6to4",
			&want4{src: serverV4, dst: me, sport: our, dport: our, proto: layers.IPProtocolICMPv4, icmpType: layers.ICMPv4TypeEchoReply}},
		{"echo request", pkt6(t, srvMAP, ceBinding.MAPAddress, l4{"echo-req", our, 0, 8}, nil), actOK, "ce_6to4",
			&want4{src: serverV4, dst: me, sport: our, dport: our, proto: layers.IPProtocolICMPv4, icmpType: layers.ICMPv4TypeEchoRequest}},
		{"mesh peer via fmr", pkt6(t, peerMAP, ceBinding.MAPAddress, l4{"tcp", peerPort, our, 10}, nil), actOK, "ce_6to4",
			&want4{src: peerV4, dst: me, sport: peerPort, dport: our, proto: layers.IPProtocolTCP}},
		{"mesh peer source port outside its psid", pkt6(t, peerMAP, ceBinding.MAPAddress, l4{"tcp", our, our, 10}, nil), actShot, "src_port", nil},
		{"mesh source not a map address", pkt6(t, netip.AddrFrom16(badIID), ceBinding.MAPAddress, l4{"tcp", peerPort, our, 10}, nil), actShot, "src_addr", nil},
		{"destination port outside set", pkt6(t, srvMAP, ceBinding.MAPAddress, l4{"tcp", 443, notIn(t, ps), 10}, nil), actShot, "dst_port", nil},
		{"echo id outside set", pkt6(t, srvMAP, ceBinding.MAPAddress, l4{"echo-rep", notIn(t, ps), 0, 8}, nil), actShot, "dst_port", nil},
		{"source neither dmr nor fmr", pkt6(t, netip.MustParseAddr("2001:db9::1"), ceBinding.MAPAddress, l4{"tcp", 443, our, 10}, nil), actShot, "src_unknown", nil},
		{"not our map address", pkt6(t, srvMAP, otherMAP, l4{"tcp", 443, our, 10}, nil), actPass, "pass", nil},
		{"other address in our prefix", pkt6(t, srvMAP, netip.MustParseAddr("2001:db8:12:3400::1"), l4{"tcp", 443, our, 10}, nil), actPass, "pass", nil},
		// RFC 7915 s5.1: these extension headers are left out.
		{"hop-by-hop header", ext6(t, srvMAP, ceBinding.MAPAddress, 4053, our, hbh()), actOK, "ce_6to4",
			&want4{src: serverV4, dst: me, sport: 4053, dport: our, proto: layers.IPProtocolUDP}},
		{"hop-by-hop, routing (done), destination options", ext6(t, srvMAP, ceBinding.MAPAddress, 4053, our, hbh(), routing(0), destOpts()), actOK, "ce_6to4",
			&want4{src: serverV4, dst: me, sport: 4053, dport: our, proto: layers.IPProtocolUDP}},
		{"routing header with segments left", ext6(t, srvMAP, ceBinding.MAPAddress, 4053, our, routing(1)), actShot, "ipv6_exthdr", nil},
		{"hop-by-hop not first", ext6(t, srvMAP, ceBinding.MAPAddress, 4053, our, destOpts(), hbh()), actShot, "ipv6_exthdr", nil},
		{"five extension headers", ext6(t, srvMAP, ceBinding.MAPAddress, 4053, our, destOpts(), destOpts(), destOpts(), destOpts(), destOpts()), actShot, "ipv6_exthdr", nil},
		{"icmpv6 fragment", frag6(t, srvMAP, ceBinding.MAPAddress, 9, make([]byte, 64), 0, 32, layers.IPProtocolICMPv6), actShot, "fragment", nil},
		{"neighbour solicitation", icmpType6(t, srvMAP, ceBinding.MAPAddress, 135), actShot, "icmp_type", nil},
		{"udp zero checksum", zeroUDPChecksum(pkt6(t, srvMAP, ceBinding.MAPAddress, l4{"udp", 4053, our, 10}, nil)), actShot, "udp_zero_csum", nil},
		{"truncated", pkt6(t, srvMAP, ceBinding.MAPAddress, l4{"tcp", 443, our, 40}, nil)[:14+40+10], actShot, "truncated", nil},
		{"not ipv6", pkt4(t, serverV4, me, l4{"tcp", 443, our, 10}, nil), actPass, "", nil},
	})
}

// TestCEInboundViaUplink: with InboundViaUplink, what ce_ingress
// translates is redirected (into the uplink's ingress) instead of going
// on into the stack, translated the same; ICMP errors too.
func TestCEInboundViaUplink(t *testing.T) {
	cfg := ceConfig()
	cfg.InboundViaUplink = true
	tr := load(t, cfg)
	me := ceBinding.IPv4.Addr()
	our := portOf(t, ceBinding.PortSet, 17)
	out := runCounted(t, tr, tr.Prog6to4(), pkt6(t, srvMAP, ceBinding.MAPAddress, l4{"udp", 4053, our, 40}, nil), actRedirect, "ce_6to4")
	check4(t, out, want4{src: serverV4, dst: me, sport: 4053, dport: our, proto: layers.IPProtocolUDP})
	udpIn := inner(t, ceBinding.MAPAddress, srvMAP, l4{"udp", our, 4053, 30}, 0)
	out = runCounted(t, tr, tr.Prog6to4(), icmpErr6(t, srvMAP, ceBinding.MAPAddress, 1, 4, 0, udpIn), actRedirect, "ce_6to4")
	checkErr4(t, out, wantErr{osrc: serverV4, odst: me, isrc: me, idst: serverV4, typ: 3, code: 3, isport: our, idport: 4053, fullInner: true})
	br := brConfig()
	br.InboundViaUplink = true
	if err := br.Validate(); err == nil || !strings.Contains(err.Error(), "inbound via uplink: CE only") {
		t.Errorf("BR with InboundViaUplink: %v", err)
	}
}

func zeroUDPChecksum(b []byte) []byte {
	off := 14 + 20
	if b[12] == 0x86 {
		off = 14 + 40
	}
	b[off+6], b[off+7] = 0, 0
	return b
}

// setOptions overwrites the IPv4 options of an Ethernet frame with raw
// bytes (gopacket cannot serialise malformed ones) and fixes the header
// checksum.
func setOptions(b []byte, opts ...byte) []byte {
	copy(b[14+20:], opts)
	b[14+10], b[14+11] = 0, 0
	ihl := int(b[14]&0xf) * 4
	var sum uint32
	for i := 0; i < ihl; i += 2 {
		sum += uint32(b[14+i])<<8 | uint32(b[14+i+1])
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	b[14+10], b[14+11] = byte(^sum>>8), byte(^sum)
	return b
}

func corrupt(b []byte, off int) []byte {
	b[off] ^= 0xff
	return b
}

func icmpType4(t *testing.T, src netip.Addr, typ uint8) []byte {
	ip := ip4(src, serverV4)
	ip.Protocol = layers.IPProtocolICMPv4
	return serialize(t, ether(false), ip, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, 0), Id: portOf(t, ceBinding.PortSet, 0)}, gopacket8())
}

func icmpType6(t *testing.T, src, dst netip.Addr, typ uint8) []byte {
	ip := ip6(src, dst)
	ip.NextHeader = layers.IPProtocolICMPv6
	ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, 0)}
	ic.SetNetworkLayerForChecksum(ip)
	return serialize(t, ether(true), ip, ic, gopacket8())
}

// Extension headers for ext6: Hop-by-Hop (0), Destination Options (60)
// and Routing (43) with segments left sl, each 8 bytes; the next-header
// bytes are filled in by ext6.
func hbh() []byte            { return []byte{0, 0, 1, 4, 0, 0, 0, 0} }
func destOpts() []byte       { return []byte{60, 0, 1, 4, 0, 0, 0, 0} }
func routing(sl byte) []byte { return []byte{43, 0, 0, sl, 0, 0, 0, 0} }

// ext6 builds an IPv6 UDP packet with the given extension headers
// (extChain).
func ext6(t *testing.T, src, dst netip.Addr, sport, dport uint16, exts ...[]byte) []byte {
	ip := ip6(src, dst)
	udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	udp.SetNetworkLayerForChecksum(ip)
	body := serialize(t, udp, gopacket8())
	next, chain := extChain(byte(layers.IPProtocolUDP), exts...)
	ip.NextHeader = layers.IPProtocol(next)
	return serialize(t, ether(true), ip, gopacket.Payload(append(chain, body...)))
}

// extChain links extension headers, each starting with its own type
// (replaced by the chain's next-header bytes), in front of a header of
// type last; it returns the type of the first and the bytes.
func extChain(last byte, exts ...[]byte) (first byte, chain []byte) {
	first = last
	for i := len(exts) - 1; i >= 0; i-- {
		e := append([]byte(nil), exts[i]...)
		e[0], first = first, e[0]
		chain = append(e, chain...)
	}
	return first, chain
}

// TestCounterNames: the counter names come from enum reason in each
// object's BTF; both objects must agree with each other, with the map size
// and with the names the rest of the project reads (metrics, status,
// tests).
func TestCounterNames(t *testing.T) {
	ce, err := loadCe()
	if err != nil {
		t.Fatal(err)
	}
	br, err := loadBr()
	if err != nil {
		t.Fatal(err)
	}
	ceNames, err := reasonNames(ce)
	if err != nil {
		t.Fatal(err)
	}
	brNames, err := reasonNames(br)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ceNames, brNames) {
		t.Fatalf("the objects disagree:\nce %v\nbr %v", ceNames, brNames)
	}
	if got := ce.Maps["counters"].MaxEntries; int(got) != len(ceNames) {
		t.Fatalf("counters map has %d entries, enum reason %d", got, len(ceNames))
	}
	if int(ceReasonR_MAX) != len(ceNames) {
		t.Fatalf("R_MAX %d, names %d", ceReasonR_MAX, len(ceNames))
	}
	for _, want := range []string{"ce_4to6", "ce_6to4", "br_4to6", "br_6to4", "br_hairpin", "pass", "src_not_ours",
		"dst_port", "src_port", "src_addr", "src_unknown", "dst_no_ce", "bad_header", "truncated", "ipv4_options",
		"ipv6_exthdr", "fragment", "proto", "icmp_type", "frag_miss", "too_big", "ttl_expired", "br_via_stack",
		"icmp_inner", "icmp_sent", "icmp_limited", "src_martian"} {
		if !slices.Contains(ceNames, want) {
			t.Errorf("no counter %q in %v", want, ceNames)
		}
	}
}

// TestCEBindingKinds runs the CE programs for every kind of binding
// (ARCHITECTURE.md, Conventions and reference vectors): an IPv4 prefix
// (EA + r < 32), a full address (EA + r = 32), a shared address with a = 0
// (one range), EA length 0 with the PSID from PORTPARAMS, and an end-user
// prefix longer than /64, whose bits overwrite the top of the interface
// ID.
func TestCEBindingKinds(t *testing.T) {
	cases := []struct {
		name, rule, eup string
		host            netip.Addr // an IPv4 address of the binding
	}{
		{"ipv4 prefix", "2001:db8:400::/40,198.18.0.0/16,8", "2001:db8:4a7::/48", netip.MustParseAddr("198.18.167.77")},
		{"full address", "2001:db8:500::/40,198.19.0.0/16,16", "2001:db8:5a7:1200::/56", netip.MustParseAddr("198.19.167.18")},
		{"shared, a = 0", "2001:db8:ce::/51,192.0.2.0/24,13,a=0", "2001:db8:ce:774::/64", netip.MustParseAddr("192.0.2.59")},
		{"ea 0, psid from portparams", "2001:db8:600:1::/64,203.0.113.77/32,0,a=4,k=6,psid=33", "2001:db8:600:1::/64", netip.MustParseAddr("203.0.113.77")},
		{"end-user prefix /72", "2001:db8:700::/56,192.0.3.0/24,16", "2001:db8:700:12:3400::/72", netip.MustParseAddr("192.0.3.18")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := mustDerive(mapt.MustParseRule(c.rule), netip.MustParsePrefix(c.eup))
			if !b.IPv4.Contains(c.host) {
				t.Fatalf("binding %v does not hold %v", b.IPv4, c.host)
			}
			tr := load(t, Config{Mode: CE, Binding: b, DMR: dmr, ICMPRate: -1})
			port := portOf(t, b.PortSet, b.PortSet.Count()/2)
			my6 := b.AddressFor(c.host)
			ret, out := run(t, tr.Prog4to6(), pkt4(t, c.host, serverV4, l4{"tcp", port, 443, 20}, nil))
			if ret != actRedirect {
				t.Fatalf("4->6 verdict %d", ret)
			}
			check6(t, out, want6{src: my6, dst: srvMAP, sport: port, dport: 443, next: layers.IPProtocolTCP})
			ret, out = run(t, tr.Prog6to4(), pkt6(t, srvMAP, my6, l4{"tcp", 443, port, 20}, nil))
			if ret != actOK {
				t.Fatalf("6->4 verdict %d", ret)
			}
			check4(t, out, want4{src: serverV4, dst: c.host, sport: 443, dport: port, proto: layers.IPProtocolTCP})
			if b.PortSet.Shared() {
				ret, _ = run(t, tr.Prog6to4(), pkt6(t, srvMAP, my6, l4{"tcp", 443, notIn(t, b.PortSet), 20}, nil))
				if ret != actShot {
					t.Errorf("port outside the set: verdict %d", ret)
				}
			}

			// The BR with the same rule as FMR maps both ways alike.
			br := load(t, Config{Mode: BR, DMR: dmr, FMRs: []mapt.Rule{mapt.MustParseRule(c.rule)}, ICMPRate: -1})
			ret, out = run(t, br.Prog6to4(), pkt6(t, my6, srvMAP, l4{"udp", port, 4053, 20}, nil))
			if ret != actOK {
				t.Fatalf("br 6->4 verdict %d", ret)
			}
			check4(t, out, want4{src: c.host, dst: serverV4, sport: port, dport: 4053, proto: layers.IPProtocolUDP})
			ret, out = run(t, br.Prog4to6(), pkt4(t, serverV4, c.host, l4{"udp", 4053, port, 20}, nil))
			if ret != actOK {
				t.Fatalf("br 4->6 verdict %d", ret)
			}
			check6(t, out, want6{src: srvMAP, dst: my6, sport: 4053, dport: port, next: layers.IPProtocolUDP})
		})
	}
}

// TestCEWANMTU: a translated packet larger than the WAN's MTU (which the
// device would drop without a trace) is dropped and counted.
func TestCEWANMTU(t *testing.T) {
	cfg := ceConfig()
	cfg.IPv6Side.MTU = 1280
	tr := load(t, cfg)
	me := ceBinding.IPv4.Addr()
	our := portOf(t, ceBinding.PortSet, 1)
	for _, c := range []struct {
		payload int // IPv4 total = 40 + payload, IPv6 total = 60 + payload
		ret     uint32
		counter string
	}{{1220, actRedirect, "ce_4to6"}, {1221, actShot, "too_big"}} {
		var ret uint32
		d := counterDelta(t, tr, func() { ret, _ = run(t, tr.Prog4to6(), pkt4(t, me, serverV4, l4{"tcp", our, 443, c.payload}, nil)) })
		if ret != c.ret || d[c.counter] != 1 || len(d) != 1 {
			t.Errorf("%d-byte IPv6 packet: verdict %d counters %v, want %d and %s", 60+c.payload, ret, d, c.ret, c.counter)
		}
	}
}
