package nat

import (
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/mapt-go/mapt/mapt"
	"github.com/mapt-go/mapt/testenv"
)

// ex1 is RFC 7597 Appendix A example 1: 192.0.2.18, PSID 0x34, 63 ranges
// of 4 ports.
func ex1(t testing.TB) Config {
	return bindingConfig(t, "2001:db8::/40,192.0.2.0/24,16,a=6", "2001:db8:12:3400::/56", uplink, 1480)
}

// nftList returns `nft -a list table ip mapt` (with handles) in ns, or ""
// when the table does not exist.
func nftList(t *testing.T, ns *testenv.NS, args ...string) string {
	t.Helper()
	out, err := ns.Exec(append([]string{"nft"}, args...)...)
	if err != nil {
		if strings.Contains(out, "No such file or directory") {
			return ""
		}
		t.Fatal(err)
	}
	return out
}

// TestRouterOwnTraffic: the CE's own connections out of the uplink are
// translated too (postrouting sees local and forwarded packets alike).
func TestRouterOwnTraffic(t *testing.T) {
	n := newNATLab(t)
	cfg := ex1(t)
	if _, err := openIn(t, n.ce).Apply(cfg); err != nil {
		t.Fatal(err)
	}
	sink := n.startSink(t)
	capture := n.sink.Capture("eth0", "ip")
	for _, proto := range []string{"tcp", "udp", "icmp"} {
		ok, closeFlows, err := openFlows(n.ce, proto, 8, 2*time.Second)
		t.Cleanup(closeFlows)
		if err != nil || ok != 8 {
			t.Fatalf("%s from the router: %d of 8 flows, %v", proto, ok, err)
		}
	}
	udp, tcp := sink.seen()
	checkSources(t, "sink tcp", cfg, tcp, 8)
	checkSources(t, "sink udp", cfg, dedup(udp), 8)
	byProto := map[string][]netip.AddrPort{}
	for _, w := range wireSources(capture.Packets()) {
		byProto[w.proto] = append(byProto[w.proto], w.src)
	}
	for _, proto := range []string{"tcp", "udp", "icmp"} {
		checkSources(t, "wire "+proto, cfg, dedup(byProto[proto]), 8)
	}
}

// TestOtherProtocols: a protocol without ports leaves with the CE address
// and its payload untouched (address-only SNAT).
func TestOtherProtocols(t *testing.T) {
	n := newNATLab(t)
	cfg := ex1(t)
	if _, err := openIn(t, n.ce).Apply(cfg); err != nil {
		t.Fatal(err)
	}
	capture := n.sink.Capture("eth0", "ip proto 47")
	payload := []byte{0, 0, 0x08, 0, 'g', 'r', 'e', '!'} // GRE header, IPv4 inside
	if err := sendRaw4(n.lan, syscall.IPPROTO_GRE, sinkAddr, payload); err != nil {
		t.Fatal(err)
	}
	pkts := capture.Packets()
	if len(pkts) != 1 {
		t.Fatalf("sink saw %d GRE packets, want 1", len(pkts))
	}
	ip := pkts[0].Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if src, _ := netip.AddrFromSlice(ip.SrcIP); src != cfg.Addr.Addr() {
		t.Fatalf("GRE left with source %s, want %s", src, cfg.Addr.Addr())
	}
	if string(ip.Payload) != string(payload) {
		t.Fatalf("GRE payload changed: % x", ip.Payload)
	}
}

// TestMSSClamp: forwarded SYNs through the uplink carry MSS = MTU - 40 in
// both directions.
func TestMSSClamp(t *testing.T) {
	n := newNATLab(t)
	cfg := ex1(t)
	cfg.MTU = 1400
	if _, err := openIn(t, n.ce).Apply(cfg); err != nil {
		t.Fatal(err)
	}
	n.startSink(t)
	sinkCap := n.sink.Capture("eth0", "tcp[tcpflags] & tcp-syn != 0")
	lanCap := n.lan.Capture("eth0", "tcp[tcpflags] & tcp-syn != 0")
	ok, closeFlows, err := openFlows(n.lan, "tcp", 1, 2*time.Second)
	t.Cleanup(closeFlows)
	if err != nil || ok != 1 {
		t.Fatalf("connect: %d, %v", ok, err)
	}
	if got := synMSS(sinkCap.Packets(), false); len(got) != 1 || got[0] != 1360 {
		t.Errorf("SYN at the sink: MSS %v, want [1360] (veth default 1460 clamped)", got)
	}
	if got := synMSS(lanCap.Packets(), true); len(got) != 1 || got[0] != 1360 {
		t.Errorf("SYN-ACK in the LAN: MSS %v, want [1360]", got)
	}
}

// TestReapply: applying the same binding twice changes nothing in the
// kernel; neither the rules nor their handles.
func TestReapply(t *testing.T) {
	n := newNATLab(t)
	nat := openIn(t, n.ce)
	cfg := ex1(t)
	changed, err := nat.Apply(cfg)
	if err != nil || !changed {
		t.Fatalf("first apply: changed %v, %v", changed, err)
	}
	before := nftList(t, n.ce, "-a", "list", "ruleset")
	// The ranges in another order are the same port set.
	again := cfg
	again.Ports = append(again.Ports[1:], again.Ports[0])
	for range 2 {
		changed, err = nat.Apply(again)
		if err != nil || changed {
			t.Fatalf("re-apply: changed %v, %v", changed, err)
		}
	}
	if after := nftList(t, n.ce, "-a", "list", "ruleset"); after != before {
		t.Fatalf("re-apply changed the kernel state:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	// Someone edits our table: the next apply repairs it.
	n.ce.MustExec("nft", "flush", "chain", "ip", TableName, "forward")
	if changed, err = nat.Apply(cfg); err != nil || !changed {
		t.Fatalf("apply after tampering: changed %v, %v", changed, err)
	}
	if !strings.Contains(nftList(t, n.ce, "list", "chain", "ip", TableName, "forward"), "jump "+chainClamp) {
		t.Fatal("apply did not restore the MSS rule")
	}
	// Tampering with a regular chain is found too.
	n.ce.MustExec("nft", "flush", "chain", "ip", TableName, chainClamp)
	if changed, err = nat.Apply(cfg); err != nil || !changed {
		t.Fatalf("apply after tampering with %s: changed %v, %v", chainClamp, changed, err)
	}
	if !strings.Contains(nftList(t, n.ce, "list", "chain", "ip", TableName, chainClamp), "maxseg size set 1440") {
		t.Fatal("apply did not restore the clamp")
	}
}

// TestCurrent reads the binding back from the kernel, as an agent does
// after a restart.
func TestCurrent(t *testing.T) {
	n := newNATLab(t)
	nat := openIn(t, n.ce)
	if _, ok, err := nat.Current(); ok || err != nil {
		t.Fatalf("Current without a table: ok %v, %v", ok, err)
	}
	for _, cfg := range []Config{
		ex1(t),
		bindingConfig(t, "2001:db8:ce::/51,192.0.2.0/24,13,a=0", "2001:db8:ce:11b::/64", uplink, 1480),
		withWAN(bindingConfig(t, "2001:db8:ce::/51,192.0.2.0/24,13,a=0", "2001:db8:ce:774::/64", uplink, 1480), "wan0"),
		bindingConfig(t, "2001:db8::/40,192.0.2.0/24,6", "2001:db8:50::/46", "tun-map", 1500),
		// The largest set accepted: a = 12, 4095 ranges of one port.
		{Uplink: uplink, Addr: netip.MustParsePrefix("192.0.2.1/32"), MTU: 1280,
			Ports: mapt.PortSet{PortParams: mapt.PortParams{Offset: 12, Len: 4}, PSID: 9}.Ranges()},
	} {
		if _, err := nat.Apply(cfg); err != nil {
			t.Fatal(err)
		}
		got, ok, err := nat.Current()
		if err != nil || !ok {
			t.Fatalf("Current: ok %v, %v", ok, err)
		}
		want := cfg
		want.Ports = slices.Clone(cfg.Ports)
		if want.Ports[0].First == 0 {
			want.Ports[0].First = 1 // port 0 is never programmed
		}
		if got.String() != want.String() || fingerprint(got) != fingerprint(want) {
			t.Errorf("Current = %s, want %s", got, want)
		}
		if changed, err := nat.Apply(cfg); err != nil || changed {
			t.Errorf("re-apply of %s: changed %v, %v", cfg, changed, err)
		}
	}
}

// synMSS returns the MSS option of every SYN (ack false) or SYN-ACK
// (ack true) in pkts.
func synMSS(pkts []gopacket.Packet, ack bool) []int {
	var out []int
	for _, p := range pkts {
		tcp, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if !ok || !tcp.SYN || tcp.ACK != ack {
			continue
		}
		for _, o := range tcp.Options {
			if o.OptionType == layers.TCPOptionKindMSS && len(o.OptionData) == 2 {
				out = append(out, int(o.OptionData[0])<<8|int(o.OptionData[1]))
			}
		}
	}
	return out
}

func checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// TestApplyInvalid: a bad configuration is refused with a clear error and
// nothing reaches the kernel; the applied table stays as it was.
func TestApplyInvalid(t *testing.T) {
	n := newNATLab(t)
	nat := openIn(t, n.ce)
	if _, err := nat.Apply(ex1(t)); err != nil {
		t.Fatal(err)
	}
	before := nftList(t, n.ce, "-a", "list", "ruleset")
	for _, tc := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.Ports = nil }, "nat: port set: empty"},
		{func(c *Config) { c.Ports = []mapt.PortRange{{First: 0, Last: 65535}, {First: 1, Last: 1}} }, "more than 65536"},
		{func(c *Config) { c.Ports = []mapt.PortRange{{First: 1000, Last: 1100}, {First: 1050, Last: 1060}} }, "overlap"},
	} {
		cfg := ex1(t)
		tc.mod(&cfg)
		changed, err := nat.Apply(cfg)
		if err == nil || changed || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Apply(%v): changed %v, error %v; want %q", cfg.Ports, changed, err, tc.want)
		}
	}
	if after := nftList(t, n.ce, "-a", "list", "ruleset"); after != before {
		t.Fatalf("a refused configuration changed the kernel state:\n%s", after)
	}
}
