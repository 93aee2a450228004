package dataplane

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/gopacket/layers"

	"github.com/mapt-go/mapt/mapt"
)

func brConfig() Config {
	return Config{Mode: BR, DMR: dmr, FMRs: allRules, ICMPRate: -1}
}

// bindingFor derives the binding of the CE owning v4 and port under r.
func bindingFor(t *testing.T, r mapt.Rule, v4 netip.Addr, port uint16) mapt.Binding {
	t.Helper()
	_, b, err := r.MapIPv4(v4, port)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// domainMap is the reference mapping of the mapt package over all rules.
func domainMap(t *testing.T, v4 netip.Addr, port uint16) netip.Addr {
	t.Helper()
	a, _, err := mapt.MapIPv4(allRules, v4, port)
	if err != nil {
		t.Fatalf("mapt maps %v port %d nowhere: %v", v4, port, err)
	}
	return a
}

// TestBR6to4 covers RFC 7599 s8.3: the source must longest-match an FMR
// and its port must belong to the PSID in the source address; the
// destination comes from the DMR; CE-to-CE traffic hairpins.
func TestBR6to4(t *testing.T) {
	tr := load(t, brConfig())
	ps := ceBinding.PortSet
	me := ceBinding.IPv4.Addr()
	our := portOf(t, ps, 40)
	peerPort, peerMAP := peerCE(t, 1)
	oneV4 := netip.MustParseAddr("203.0.113.5")
	one3 := bindingFor(t, ruleOne3, oneV4, portOf(t, mapt.PortSet{PortParams: ruleOne3.Params(), PSID: 3}, 0))
	one3Port := portOf(t, one3.PortSet, 100)
	fullV4 := netip.MustParseAddr("198.18.0.77")
	full := bindingFor(t, ruleFull, fullV4, 1)
	badIID := ceBinding.MAPAddress.As16()
	badIID[13] ^= 1 // IPv4 in the interface ID disagrees with the EA bits

	runCases(t, tr, tr.Prog6to4(), []xlatCase{
		{"tcp from ce", pkt6(t, ceBinding.MAPAddress, srvMAP, l4{"tcp", our, 443, 100}, nil), actOK, "br_6to4",
			&want4{src: me, dst: serverV4, sport: our, dport: 443, proto: layers.IPProtocolTCP}},
		{"udp from ce", pkt6(t, ceBinding.MAPAddress, srvMAP, l4{"udp", our, 4053, 20}, nil), actOK, "br_6to4",
			&want4{src: me, dst: serverV4, sport: our, dport: 4053, proto: layers.IPProtocolUDP}},
		{"tcp 1500 bytes", pkt6(t, ceBinding.MAPAddress, srvMAP, l4{"tcp", our, 443, 1440}, nil), actOK, "br_6to4",
			&want4{src: me, dst: serverV4, sport: our, dport: 443, proto: layers.IPProtocolTCP, df: true}},
		{"echo request from ce", pkt6(t, ceBinding.MAPAddress, srvMAP, l4{"echo-req", our, 0, 56}, nil), actOK, "br_6to4",
			&want4{src: me, dst: serverV4, sport: our, dport: our, proto: layers.IPProtocolICMPv4, icmpType: layers.ICMPv4TypeEchoRequest}},
		{"shared 1:1 ce", pkt6(t, one3.MAPAddress, srvMAP, l4{"tcp", one3Port, 443, 10}, nil), actOK, "br_6to4",
			&want4{src: oneV4, dst: serverV4, sport: one3Port, dport: 443, proto: layers.IPProtocolTCP}},
		{"full-address ce", pkt6(t, full.MAPAddress, srvMAP, l4{"udp", 33333, 4053, 10}, nil), actOK, "br_6to4",
			&want4{src: fullV4, dst: serverV4, sport: 33333, dport: 4053, proto: layers.IPProtocolUDP}},
		{"source port outside psid", pkt6(t, ceBinding.MAPAddress, srvMAP, l4{"tcp", notIn(t, ps), 443, 10}, nil), actShot, "src_port", nil},
		{"echo id outside psid", pkt6(t, ceBinding.MAPAddress, srvMAP, l4{"echo-req", notIn(t, ps), 0, 8}, nil), actShot, "src_port", nil},
		{"shared 1:1 ce uses other psid", pkt6(t, one3.MAPAddress, srvMAP, l4{"tcp", notIn(t, one3.PortSet), 443, 10}, nil), actShot, "src_port", nil},
		{"source not a map address", pkt6(t, netip.AddrFrom16(badIID), srvMAP, l4{"tcp", our, 443, 10}, nil), actShot, "src_addr", nil},
		{"source in no fmr", pkt6(t, netip.MustParseAddr("2001:db9::1"), srvMAP, l4{"tcp", our, 443, 10}, nil), actShot, "src_unknown", nil},
		{"not to the dmr", pkt6(t, ceBinding.MAPAddress, netip.MustParseAddr("2001:db9::1"), l4{"tcp", our, 443, 10}, nil), actPass, "pass", nil},
		{"hairpin to peer ce", pkt6(t, ceBinding.MAPAddress, mapt.Embed(dmr, peerV4), l4{"tcp", our, peerPort, 10}, nil), actOK, "br_hairpin",
			&want6{src: mapt.Embed(dmr, me), dst: peerMAP, sport: our, dport: peerPort, next: layers.IPProtocolTCP}},
		{"hairpin echo to shared address", pkt6(t, ceBinding.MAPAddress, mapt.Embed(dmr, oneV4), l4{"echo-req", our, 0, 8}, nil), actOK, "br_hairpin",
			&want6{src: mapt.Embed(dmr, me), dst: domainMap(t, oneV4, our), sport: our, dport: our, next: layers.IPProtocolICMPv6, icmpType: layers.ICMPv6TypeEchoRequest}},
		{"hairpin to port in no set", pkt6(t, ceBinding.MAPAddress, mapt.Embed(dmr, peerV4), l4{"udp", our, 80, 10}, nil), actShot, "dst_no_ce", nil},
		{"destination options left out", ext6(t, ceBinding.MAPAddress, srvMAP, our, 4053, destOpts()), actOK, "br_6to4",
			&want4{src: me, dst: serverV4, sport: our, dport: 4053, proto: layers.IPProtocolUDP}},
		{"routing header with segments left", ext6(t, ceBinding.MAPAddress, srvMAP, our, 4053, routing(2)), actShot, "ipv6_exthdr", nil},
		{"truncated", pkt6(t, ceBinding.MAPAddress, srvMAP, l4{"tcp", our, 443, 40}, nil)[:14+40+12], actShot, "truncated", nil},
	})
}

// TestBR4to6 covers RFC 7599 s8.4: destination IPv4 and port (echo id) to
// the owning CE's MAP address, source DMR-embedded.
func TestBR4to6(t *testing.T) {
	tr := load(t, brConfig())
	ps := ceBinding.PortSet
	me := ceBinding.IPv4.Addr()
	our := portOf(t, ps, 77)
	oneV4 := netip.MustParseAddr("203.0.113.5")
	p3 := portOf(t, mapt.PortSet{PortParams: ruleOne3.Params(), PSID: 3}, 5)
	p9 := portOf(t, mapt.PortSet{PortParams: ruleOne9.Params(), PSID: 9}, 5)
	p5 := portOf(t, mapt.PortSet{PortParams: ruleOne9.Params(), PSID: 5}, 5)
	fullV4 := netip.MustParseAddr("198.18.0.77")

	runCases(t, tr, tr.Prog4to6(), []xlatCase{
		{"tcp to ce", pkt4(t, serverV4, me, l4{"tcp", 443, our, 100}, nil), actOK, "br_4to6",
			&want6{src: srvMAP, dst: ceBinding.MAPAddress, sport: 443, dport: our, next: layers.IPProtocolTCP}},
		{"udp to ce", pkt4(t, serverV4, me, l4{"udp", 4053, our, 20}, nil), actOK, "br_4to6",
			&want6{src: srvMAP, dst: ceBinding.MAPAddress, sport: 4053, dport: our, next: layers.IPProtocolUDP}},
		{"tcp 1500 bytes", pkt4(t, serverV4, me, l4{"tcp", 443, our, 1460}, nil), actOK, "br_4to6",
			&want6{src: srvMAP, dst: ceBinding.MAPAddress, sport: 443, dport: our, next: layers.IPProtocolTCP}},
		{"echo reply to ce", pkt4(t, serverV4, me, l4{"echo-rep", our, 0, 56}, nil), actOK, "br_4to6",
			&want6{src: srvMAP, dst: ceBinding.MAPAddress, sport: our, dport: our, next: layers.IPProtocolICMPv6, icmpType: layers.ICMPv6TypeEchoReply}},
		{"shared address psid 3", pkt4(t, serverV4, oneV4, l4{"tcp", 443, p3, 10}, nil), actOK, "br_4to6",
			&want6{src: srvMAP, dst: mapV4(t, ruleOne3, oneV4, p3), sport: 443, dport: p3, next: layers.IPProtocolTCP}},
		{"shared address psid 9", pkt4(t, serverV4, oneV4, l4{"udp", 443, p9, 10}, nil), actOK, "br_4to6",
			&want6{src: srvMAP, dst: mapV4(t, ruleOne9, oneV4, p9), sport: 443, dport: p9, next: layers.IPProtocolUDP}},
		{"full-address rule", pkt4(t, serverV4, fullV4, l4{"tcp", 443, 80, 10}, nil), actOK, "br_4to6",
			&want6{src: srvMAP, dst: mapV4(t, ruleFull, fullV4, 80), sport: 443, dport: 80, next: layers.IPProtocolTCP}},
		{"shared address psid without ce", pkt4(t, serverV4, oneV4, l4{"tcp", 443, p5, 10}, nil), actShot, "dst_no_ce", nil},
		{"port with A = 0", pkt4(t, serverV4, me, l4{"tcp", 443, 80, 10}, nil), actShot, "dst_no_ce", nil},
		{"not in any fmr", pkt4(t, serverV4, netip.MustParseAddr("10.1.2.3"), l4{"tcp", 443, our, 10}, nil), actPass, "pass", nil},
		{"ipv4 options left out", pkt4(t, serverV4, me, l4{"udp", 443, our, 10}, func(ip *layers.IPv4) {
			ip.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}
		}), actOK, "br_4to6", &want6{src: srvMAP, dst: ceBinding.MAPAddress, sport: 443, dport: our, next: layers.IPProtocolUDP}},
		{"ipv4 strict source route", pkt4(t, serverV4, me, l4{"tcp", 443, our, 10}, func(ip *layers.IPv4) {
			ip.Options = []layers.IPv4Option{{OptionType: 137, OptionLength: 7, OptionData: []byte{4, 10, 0, 0, 1}}, {OptionType: 0}}
		}), actShot, "ipv4_options", nil},
		{"bad header checksum", corrupt(pkt4(t, serverV4, me, l4{"tcp", 443, our, 10}, nil), 14+11), actShot, "bad_header", nil},
		{"udp zero checksum", zeroUDPChecksum(pkt4(t, serverV4, me, l4{"udp", 4053, our, 333}, nil)), actOK, "br_4to6",
			&want6{src: srvMAP, dst: ceBinding.MAPAddress, sport: 4053, dport: our, next: layers.IPProtocolUDP}},
	})
}

// TestLongestMatchAcrossTables: a 1:1 rule (exact-match hash) nested in
// an EA rule (trie) wins for its own prefix, the trie rule for the rest,
// and a trie rule longer than some hashed lengths beats them.
func TestLongestMatchAcrossTables(t *testing.T) {
	outer := mapt.MustParseRule("2001:db8::/40,192.0.2.0/24,16,a=6,fmr")
	inner := mapt.MustParseRule("2001:db8:12:3400::/64,203.0.113.9/32,0,fmr")
	var rules = []mapt.Rule{outer, inner}
	// Four more hashed lengths push /52 out of the hash into the trie.
	for i, l := range []int{60, 60, 56, 56, 48, 48, 64} {
		rules = append(rules, mapt.MustParseRule(fmt.Sprintf("2001:db9:%x::/%d,10.0.1.%d/32,0,fmr", 0x100+i, l, i)))
	}
	in52 := mapt.MustParseRule("2001:db9:120::/52,10.0.2.1/32,0,fmr")
	in48 := mapt.MustParseRule("2001:db9:120::/48,10.0.2.2/32,0,fmr")
	rules = append(rules, in52, in48)
	tabs, err := buildTables(rules)
	if err != nil {
		t.Fatal(err)
	}
	if tabs.lens != [4]uint8{64, 60, 56, 48} {
		t.Fatalf("hashed lengths %v", tabs.lens)
	}
	tr := load(t, Config{Mode: BR, DMR: dmr, FMRs: rules})
	cases := []struct {
		name string
		rule mapt.Rule
		eup  netip.Prefix
		want netip.Addr
	}{
		{"hashed /64 inside trie /40", inner, inner.IPv6Prefix, netip.MustParseAddr("203.0.113.9")},
		{"trie /40 outside the /64", outer, netip.MustParsePrefix("2001:db8:12:3500::/56"), netip.MustParseAddr("192.0.2.18")},
		{"trie /52 over hashed /48", in52, in52.IPv6Prefix, netip.MustParseAddr("10.0.2.1")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := mustDerive(c.rule, c.eup)
			port := portOf(t, b.PortSet, 1)
			ret, out := run(t, tr.Prog6to4(), pkt6(t, b.MAPAddress, srvMAP, l4{"udp", port, 4053, 8}, nil))
			if ret != actOK {
				t.Fatalf("verdict %d", ret)
			}
			check4(t, out, want4{src: c.want, dst: serverV4, sport: port, dport: 4053, proto: layers.IPProtocolUDP})
		})
	}
}
