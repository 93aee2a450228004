package dataplane

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/mapt-go/mapt/mapt"
	"github.com/mapt-go/mapt/testenv"
)

// TC verdicts (linux/pkt_cls.h).
const (
	actOK       = 0
	actPass     = 0xffffffff // TC_ACT_UNSPEC: next program or the stack
	actShot     = 2
	actRedirect = 7
)

// The lab's MAP domain: RFC 7597 Appendix A example 1 (EA 16, a = 6,
// k = 8) as BMR and FMR, a full-address rule, and two EA-length-0 rules
// sharing one IPv4 address by PSID.
var (
	ruleA     = mapt.MustParseRule("2001:db8::/40,192.0.2.0/24,16,a=6,fmr")
	ruleFull  = mapt.MustParseRule("2001:db8:200::/48,198.18.0.0/24,8,fmr")
	ruleOne3  = mapt.MustParseRule("2001:db8:100:1::/64,203.0.113.5/32,0,a=6,k=4,psid=3,fmr")
	ruleOne9  = mapt.MustParseRule("2001:db8:100:2::/64,203.0.113.5/32,0,a=6,k=4,psid=9,fmr")
	dmr       = netip.MustParsePrefix("2001:db8:ffff::/64")
	ceEUP     = netip.MustParsePrefix("2001:db8:12:3400::/56")
	peerV4    = netip.MustParseAddr("192.0.2.99")
	serverV4  = netip.MustParseAddr("198.51.100.7")
	srvMAP    = mapt.Embed(dmr, serverV4)
	allRules  = []mapt.Rule{ruleA, ruleFull, ruleOne3, ruleOne9}
	ceBinding = mustDerive(ruleA, ceEUP)
	// The peer CE: peerV4 with PSID 7 under ruleA.
	peerPS = mapt.PortSet{PortParams: ceBinding.PortSet.PortParams, PSID: 7}
)

// peerCE is the i-th port of the peer CE and the CE's MAP address for it.
func peerCE(t *testing.T, i int) (uint16, netip.Addr) {
	t.Helper()
	port := portOf(t, peerPS, i)
	return port, mapV4(t, ruleA, peerV4, port)
}

func mustDerive(r mapt.Rule, eup netip.Prefix) mapt.Binding {
	b, err := r.Derive(eup)
	if err != nil {
		panic(err)
	}
	return b
}

// portOf returns the i-th port of a binding's port set.
func portOf(t testing.TB, ps mapt.PortSet, i int) uint16 {
	t.Helper()
	p, ok := ps.Port(i)
	if !ok {
		t.Fatalf("port set %v has no port %d", ps, i)
	}
	return p
}

// notIn returns a port outside the set (and, when a > 0, with A >= 1).
func notIn(t testing.TB, ps mapt.PortSet) uint16 {
	t.Helper()
	for p := 2000; p < 65536; p++ {
		if !ps.Contains(uint16(p)) {
			return uint16(p)
		}
	}
	t.Fatal("port set has no outside port")
	return 0
}

func ceConfig() Config {
	// The translator's own ICMP errors are off here: reply_linux_test.go
	// tests them.
	return Config{Mode: CE, Binding: ceBinding, DMR: dmr, FMRs: allRules, IPv6Side: Link{Ifindex: 1}, IPv4Side: Link{Ifindex: 1}, ICMPRate: -1}
}

func load(t testing.TB, cfg Config) *Translator {
	t.Helper()
	testenv.Require(t)
	tr, err := Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

var (
	macA = net.HardwareAddr{2, 0, 0, 0, 0, 1}
	macB = net.HardwareAddr{2, 0, 0, 0, 0, 2}
)

// l4 describes a transport header for the packet builders.
type l4 struct {
	proto      string // tcp, udp, echo-req, echo-rep
	sport      uint16 // or the echo identifier
	dport      uint16
	payloadLen int
}

func (l l4) layers(net gopacket.NetworkLayer, v6 bool) []gopacket.SerializableLayer {
	payload := bytes.Repeat([]byte{0xa5, 0x5a, 0x01}, l.payloadLen/3+1)[:l.payloadLen]
	switch l.proto {
	case "tcp":
		tcp := &layers.TCP{SrcPort: layers.TCPPort(l.sport), DstPort: layers.TCPPort(l.dport), Seq: 0x01020304, Ack: 0x0a0b0c0d, ACK: true, PSH: true, Window: 5000}
		tcp.SetNetworkLayerForChecksum(net)
		return []gopacket.SerializableLayer{tcp, gopacket.Payload(payload)}
	case "udp":
		udp := &layers.UDP{SrcPort: layers.UDPPort(l.sport), DstPort: layers.UDPPort(l.dport)}
		udp.SetNetworkLayerForChecksum(net)
		return []gopacket.SerializableLayer{udp, gopacket.Payload(payload)}
	}
	if v6 {
		typ := uint8(layers.ICMPv6TypeEchoRequest)
		if l.proto == "echo-rep" {
			typ = layers.ICMPv6TypeEchoReply
		}
		ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, 0)}
		ic.SetNetworkLayerForChecksum(net)
		return []gopacket.SerializableLayer{ic, &layers.ICMPv6Echo{Identifier: l.sport, SeqNumber: 77}, gopacket.Payload(payload)}
	}
	typ := uint8(layers.ICMPv4TypeEchoRequest)
	if l.proto == "echo-rep" {
		typ = layers.ICMPv4TypeEchoReply
	}
	return []gopacket.SerializableLayer{&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, 0), Id: l.sport, Seq: 77}, gopacket.Payload(payload)}
}

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

func ip4(src, dst netip.Addr) *layers.IPv4 {
	return &layers.IPv4{Version: 4, IHL: 5, TOS: 0x28, TTL: 33, Flags: layers.IPv4DontFragment, Id: 0x1234,
		SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
}

func ip6(src, dst netip.Addr) *layers.IPv6 {
	return &layers.IPv6{Version: 6, TrafficClass: 0x28, FlowLabel: 0x12345, HopLimit: 33,
		SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
}

// ipLayer is an IP header of the packet builders: *layers.IPv4 or
// *layers.IPv6.
type ipLayer interface {
	gopacket.NetworkLayer
	gopacket.SerializableLayer
}

// ipHeader is ip4 or ip6 by the family of src and dst, carrying proto.
func ipHeader(t testing.TB, src, dst netip.Addr, proto layers.IPProtocol) ipLayer {
	t.Helper()
	if src.Is4() != dst.Is4() {
		t.Fatalf("%v > %v: two address families", src, dst)
	}
	if src.Is4() {
		ip := ip4(src, dst)
		ip.Protocol = proto
		return ip
	}
	ip := ip6(src, dst)
	ip.NextHeader = proto
	return ip
}

// ether is the Ethernet header of the packet builders, for IPv6 when v6.
func ether(v6 bool) *layers.Ethernet {
	typ := layers.EthernetTypeIPv4
	if v6 {
		typ = layers.EthernetTypeIPv6
	}
	return &layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: typ}
}

// ipProto is l's IP protocol; echo is ICMPv6 in IPv6 (v6), ICMPv4 in IPv4.
func (l l4) ipProto(v6 bool) layers.IPProtocol {
	switch l.proto {
	case "tcp":
		return layers.IPProtocolTCP
	case "udp":
		return layers.IPProtocolUDP
	}
	if v6 {
		return layers.IPProtocolICMPv6
	}
	return layers.IPProtocolICMPv4
}

// ipPacket is an IP packet from src to dst carrying l, IPv4 or IPv6 by
// the addresses' family: its IP header, and its layers from that header on.
func ipPacket(t testing.TB, src, dst netip.Addr, l l4) (ipLayer, []gopacket.SerializableLayer) {
	t.Helper()
	ip := ipHeader(t, src, dst, l.ipProto(src.Is6()))
	return ip, append([]gopacket.SerializableLayer{ip}, l.layers(ip, src.Is6())...)
}

// pkt4 builds an Ethernet + IPv4 packet; mod may alter the IP header.
func pkt4(t testing.TB, src, dst netip.Addr, l l4, mod func(*layers.IPv4)) []byte {
	t.Helper()
	return pkt(t, src, dst, l, mod)
}

// pkt6 builds an Ethernet + IPv6 packet; mod may alter the IP header.
func pkt6(t testing.TB, src, dst netip.Addr, l l4, mod func(*layers.IPv6)) []byte {
	t.Helper()
	return pkt(t, src, dst, l, mod)
}

// pkt builds an Ethernet + IP packet of the family of H from src to dst
// (of that family too); mod may alter the IP header.
func pkt[H ipLayer](t testing.TB, src, dst netip.Addr, l l4, mod func(H)) []byte {
	t.Helper()
	ip, ls := ipPacket(t, src, dst, l)
	h, ok := ip.(H)
	if !ok {
		t.Fatalf("%v > %v is no %T packet", src, dst, h)
	}
	if mod != nil {
		mod(h)
	}
	return serialize(t, append([]gopacket.SerializableLayer{ether(src.Is6())}, ls...)...)
}

// run feeds one packet through prog with BPF_PROG_TEST_RUN.
func run(t testing.TB, prog *ebpf.Program, in []byte) (uint32, []byte) {
	t.Helper()
	out := make([]byte, len(in)+256)
	opts := ebpf.RunOptions{Data: in, DataOut: out, Repeat: 1}
	ret, err := prog.Run(&opts)
	if err != nil {
		t.Fatalf("prog run: %v", err)
	}
	return ret, opts.DataOut
}

// decode parses an output packet and checks every checksum in it by
// re-serializing the decoded layers with gopacket's own checksum code.
func decode(t testing.TB, out []byte) gopacket.Packet {
	t.Helper()
	p := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("output does not decode: %v\n%s", el.Error(), p.Dump())
	}
	verifyChecksums(t, p)
	return p
}

func verifyChecksums(t testing.TB, p gopacket.Packet) {
	t.Helper()
	var net gopacket.NetworkLayer
	if ip := p.Layer(layers.LayerTypeIPv4); ip != nil {
		v := *ip.(*layers.IPv4)
		net = &v
		got := v.Checksum
		re := gopacket.NewPacket(serialize(t, &v, gopacket.Payload(v.Payload)), layers.LayerTypeIPv4, gopacket.NoCopy)
		if want := re.Layer(layers.LayerTypeIPv4).(*layers.IPv4).Checksum; got != want {
			t.Errorf("ipv4 header checksum %#04x, gopacket computes %#04x", got, want)
		}
	} else if ip := p.Layer(layers.LayerTypeIPv6); ip != nil {
		v := *ip.(*layers.IPv6)
		net = &v
	}
	if net == nil {
		t.Fatal("output has no IP layer")
	}
	check := func(name string, got uint16, l gopacket.SerializableLayer, payload []byte, lt gopacket.LayerType, field func(gopacket.Layer) uint16) {
		t.Helper()
		re := gopacket.NewPacket(serialize(t, l, gopacket.Payload(payload)), lt, gopacket.NoCopy)
		if want := field(re.Layer(lt)); got != want {
			t.Errorf("%s checksum %#04x, gopacket computes %#04x", name, got, want)
		}
	}
	if l := p.Layer(layers.LayerTypeTCP); l != nil {
		v := *l.(*layers.TCP)
		v.SetNetworkLayerForChecksum(net)
		check("tcp", v.Checksum, &v, v.Payload, layers.LayerTypeTCP, func(l gopacket.Layer) uint16 { return l.(*layers.TCP).Checksum })
	}
	if l := p.Layer(layers.LayerTypeUDP); l != nil {
		v := *l.(*layers.UDP)
		v.SetNetworkLayerForChecksum(net)
		check("udp", v.Checksum, &v, v.Payload, layers.LayerTypeUDP, func(l gopacket.Layer) uint16 { return l.(*layers.UDP).Checksum })
	}
	if l := p.Layer(layers.LayerTypeICMPv4); l != nil {
		v := *l.(*layers.ICMPv4)
		check("icmpv4", v.Checksum, &v, v.Payload, layers.LayerTypeICMPv4, func(l gopacket.Layer) uint16 { return l.(*layers.ICMPv4).Checksum })
	}
	if l := p.Layer(layers.LayerTypeICMPv6); l != nil {
		v := *l.(*layers.ICMPv6)
		v.SetNetworkLayerForChecksum(net)
		check("icmpv6", v.Checksum, &v, v.Payload, layers.LayerTypeICMPv6, func(l gopacket.Layer) uint16 { return l.(*layers.ICMPv6).Checksum })
	}
}

// runCounted runs prog on in and fails the test unless its verdict is ret
// and the counter named moved by one and no other did (none at all for
// ""). It returns the output packet.
func runCounted(t *testing.T, tr *Translator, prog *ebpf.Program, in []byte, ret uint32, counter string) []byte {
	t.Helper()
	var got uint32
	var out []byte
	d := counterDelta(t, tr, func() { got, out = run(t, prog, in) })
	if got != ret {
		t.Fatalf("verdict %d, want %d (counters %v)", got, ret, d)
	}
	if counter == "" && len(d) != 0 {
		t.Errorf("counters moved: %v", d)
	}
	if counter != "" && (d[counter] != 1 || len(d) != 1) {
		t.Errorf("counters moved %v, want only %s by 1", d, counter)
	}
	return out
}

// xlatCase is one packet through a program: the verdict, the one counter
// that must move ("" for none), and what must come out (nil: unchecked).
type xlatCase struct {
	name    string
	in      []byte
	ret     uint32
	counter string
	want    wanted
}

// wanted is a packet a program must put out: *want4, *want6 or *wantErr.
type wanted interface {
	check(t *testing.T, out []byte)
}

// runCases runs each case through prog in a subtest (runCounted) and
// checks its output.
func runCases(t *testing.T, tr *Translator, prog *ebpf.Program, cases []xlatCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := runCounted(t, tr, prog, c.in, c.ret, c.counter)
			if c.want != nil {
				c.want.check(t, out)
			}
		})
	}
}

// counterDelta runs fn and returns how the counters moved.
func counterDelta(t testing.TB, tr *Translator, fn func()) map[string]uint64 {
	t.Helper()
	before, err := tr.Counters()
	if err != nil {
		t.Fatal(err)
	}
	fn()
	after, err := tr.Counters()
	if err != nil {
		t.Fatal(err)
	}
	d := map[string]uint64{}
	for k, v := range after {
		if v != before[k] {
			d[k] = v - before[k]
		}
	}
	return d
}

// layerOf returns p's layer of type lt, or fails the test with p's dump
// (what names the packet in the message).
func layerOf[L gopacket.Layer](t testing.TB, p gopacket.Packet, lt gopacket.LayerType, what string) L {
	t.Helper()
	l, ok := p.Layer(lt).(L)
	if !ok {
		t.Fatalf("%s has no %v layer:\n%s", what, lt, p.Dump())
	}
	return l
}

// checkAddrs compares a header's addresses (what names it) with the
// wanted ones.
func checkAddrs(t testing.TB, what string, src, dst net.IP, wsrc, wdst netip.Addr) {
	t.Helper()
	if s, d := addr(src), addr(dst); s != wsrc || d != wdst {
		t.Errorf("%s %v > %v, want %v > %v", what, s, d, wsrc, wdst)
	}
}

func addr(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}

// ports returns the transport ports (or the echo identifier twice).
func ports(t testing.TB, p gopacket.Packet) (uint16, uint16) {
	t.Helper()
	if l := p.Layer(layers.LayerTypeTCP); l != nil {
		v := l.(*layers.TCP)
		return uint16(v.SrcPort), uint16(v.DstPort)
	}
	if l := p.Layer(layers.LayerTypeUDP); l != nil {
		v := l.(*layers.UDP)
		return uint16(v.SrcPort), uint16(v.DstPort)
	}
	if l := p.Layer(layers.LayerTypeICMPv4); l != nil {
		v := l.(*layers.ICMPv4)
		return v.Id, v.Id
	}
	if l := p.Layer(layers.LayerTypeICMPv6Echo); l != nil {
		v := l.(*layers.ICMPv6Echo)
		return v.Identifier, v.Identifier
	}
	t.Fatalf("no ports in\n%s", p.Dump())
	return 0, 0
}

// checkPorts compares p's transport ports (ports) with the wanted ones.
func checkPorts(t testing.TB, p gopacket.Packet, sport, dport uint16) {
	t.Helper()
	if sp, dp := ports(t, p); sp != sport || dp != dport {
		t.Errorf("ports %d>%d, want %d>%d", sp, dp, sport, dport)
	}
}

// decodeFamily decodes a translated frame (decode) and checks that its
// ethertype is IPv6 when v6, IPv4 if not.
func decodeFamily(t testing.TB, out []byte, v6 bool) gopacket.Packet {
	t.Helper()
	p := decode(t, out)
	want := ether(v6).EthernetType
	if eth := layerOf[*layers.Ethernet](t, p, layers.LayerTypeEthernet, "output"); eth.EthernetType != want {
		t.Errorf("ethertype %v, want %v", eth.EthernetType, want)
	}
	return p
}

// gopacket8 is an 8-byte payload for hand-built ICMP packets.
func gopacket8() gopacket.Payload { return gopacket.Payload{1, 2, 3, 4, 5, 6, 7, 8} }

// inNS opens something (a socket, a device) with open inside ns and
// fails t on its error; what it opens stays in that namespace. Unlike
// testenv's NS.Listen, which fails the lab's test and closes the socket
// when that test ends, it reports on t and leaves closing to the caller,
// so a subtest can open and close its own.
func inNS[T any](t testing.TB, ns *testenv.NS, open func() (T, error)) T {
	t.Helper()
	var v T
	if err := ns.Do(func() (err error) { v, err = open(); return err }); err != nil {
		t.Fatal(err)
	}
	return v
}

// HaveTCX is testenv.HaveTCX, kept for the dataplane_test package.
func HaveTCX(t testing.TB) bool { return testenv.HaveTCX(t) }
