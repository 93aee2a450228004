package dataplane

import (
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/mapt-go/mapt/mapt"
)

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
		prog         *ebpf.Program
		in           []byte
		ret          uint32
		outer, inner int
	}{
		{"ce 4->6", ce.Prog4to6(), pkt4(t, me, serverV4, l4{"udp", our, 4053, 20}, nil), actRedirect, 0, -1},
		{"ce 6->4", ce.Prog6to4(), pkt6(t, srvMAP, my6, l4{"tcp", 443, our, 20}, nil), actOK, 0xb8, -1},
		{"ce 4->6 error", ce.Prog4to6(), icmpErr4(t, me, serverV4, 3, 3, 0, inner(t, serverV4, me, l4{"udp", 4053, our, 30}, 0)), actRedirect, 0, 0},
		{"ce 6->4 error", ce.Prog6to4(), icmpErr6(t, srvMAP, my6, 1, 4, 0, inner(t, my6, srvMAP, l4{"udp", our, 4053, 30}, 0)), actOK, 0xb8, 0xb8},
		{"br 6->4", br.Prog6to4(), pkt6(t, my6, srvMAP, l4{"udp", our, 4053, 20}, nil), actOK, 0xb8, -1},
		{"br 4->6", br.Prog4to6(), pkt4(t, serverV4, me, l4{"tcp", 443, our, 20}, nil), actOK, 0, -1},
		{"br 4->6 error", br.Prog4to6(), icmpErr4(t, router, me, 3, 3, 0, inner(t, me, serverV4, l4{"udp", our, 4053, 30}, 0)), actOK, 0, 0},
		{"br 6->4 error", br.Prog6to4(), icmpErr6(t, my6, srvMAP, 1, 4, 0, inner(t, srvMAP, my6, l4{"udp", 4053, our, 30}, 0)), actOK, 0xb8, 0xb8},
		// The hairpin: TOS set, then the Traffic Class from it.
		{"br hairpin", br.Prog6to4(), pkt6(t, my6, mapt.Embed(dmr, peerV4), l4{"tcp", our, peerPort, 10}, nil), actOK, 0, -1},
		{"br hairpin, tos only", brTOS.Prog6to4(), pkt6(t, my6, mapt.Embed(dmr, peerV4), l4{"tcp", our, peerPort, 10}, nil), actOK, 0xb8, -1},
		{"br hairpin error, tos only", brTOS.Prog6to4(), icmpErr6(t, peerMAP, mapt.Embed(dmr, me), 1, 4, 0, inner(t, mapt.Embed(dmr, me), peerMAP, l4{"udp", our, peerPort, 30}, 0)), actOK, 0xb8, 0x28},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ret, out := run(t, tc.prog, tc.in)
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
		for _, c := range []struct {
			prog *ebpf.Program
			in   []byte
			ret  uint32
		}{
			{ce.Prog4to6(), pkt4(t, me, serverV4, l4{"udp", our, 4053, 20}, nil), actRedirect},
			{ce.Prog6to4(), pkt6(t, srvMAP, my6, l4{"tcp", 443, our, 20}, nil), actOK},
		} {
			ret, out := run(t, c.prog, c.in)
			if ret != c.ret {
				t.Fatalf("verdict %d, want %d", ret, c.ret)
			}
			if ds, _ := dsOf(t, out); ds != 0x28 {
				t.Errorf("DS field %#x after the update, want 0x28 (copied)", ds)
			}
		}
	})
}
