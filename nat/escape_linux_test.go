package nat

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/google/gopacket/layers"

	"github.com/mapt-go/mapt/dataplane"
	"github.com/mapt-go/mapt/mapt"
	"github.com/mapt-go/mapt/testenv"
)

// TestEscapedNAT: packets that conntrack does not translate (invalid or
// untracked) keep their LAN address or their port; the table has no
// guard of its own, and the CE translator at the uplink, which every
// packet must pass to leave, drops them and counts them (src_not_ours):
// none reaches the WAN. A datagram the NAT did translate gets through, so
// the translator in this lab is working.
//
// lan (10.0.0.2) -> ce (lan0 10.0.0.1; TUN up0 192.0.2.18, the IPv4
// default route, with our table and the CE translator; wan
// 2001:db8:6::2) -> wan (2001:db8:6::1, the IPv6 next hop).
func TestEscapedNAT(t *testing.T) {
	testenv.Require(t, "nft", "tcpdump", "sysctl", "ip")
	l := testenv.New(t)
	lan, ce, wan := l.NS("lan"), l.NS("ce"), l.NS("wan")
	l.Veth(lan, "eth0", ce, "lan0")
	l.Veth(ce, "wan", wan, "eth0")
	lan.Addr("eth0", "10.0.0.2/24")
	lan.Route("default", "via", "10.0.0.1")
	ce.Addr("lan0", "10.0.0.1/24")
	ce.MustExec("ip", "tuntap", "add", "dev", uplink, "mode", "tun")
	ce.MustExec("ip", "link", "set", "dev", uplink, "mtu", "1480", "up")
	ce.Addr(uplink, "192.0.2.18/32")
	ce.Route("default", "dev", uplink)
	ce.Addr("wan", "2001:db8:6::2/64")
	ce.Route("default", "via", "2001:db8:6::1")
	ce.Forwarding()
	wan.Addr("eth0", "2001:db8:6::1/64")

	rule, err := mapt.ParseRule("2001:db8::/40,192.0.2.0/24,16,a=6")
	if err != nil {
		t.Fatal(err)
	}
	b, err := rule.Derive(netip.MustParsePrefix("2001:db8:12:3400::/56"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := FromBinding(b, uplink, 1480)
	if _, err := openIn(t, ce).Apply(cfg); err != nil {
		t.Fatal(err)
	}
	var tr *dataplane.Translator
	err = ce.Do(func() (err error) {
		if tr, err = dataplane.Load(dataplane.Config{Mode: dataplane.CE, Binding: b, DMR: netip.MustParsePrefix("64:ff9b::/96")}); err != nil {
			return err
		}
		return tr.AttachCE(uplink, "wan", dataplane.AttachAuto)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	// Only what the translator could have sent: the namespaces' own
	// IPv6 housekeeping (MLD reports behind a hop-by-hop header, which
	// "icmp6" does not match, neighbour discovery) is multicast or
	// link-local.
	capture := wan.Capture("eth0", "ip6 and not icmp6 and not ip6 multicast and not src net fe80::/10")

	// Translated: a datagram from the LAN.
	err = lan.Do(func() error {
		c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: sinkAddr.AsSlice(), Port: 9})
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("translated"))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// Invalid: an ICMP port unreachable from the LAN that belongs to no
	// connection; NAT never sees it.
	icmpErr := []byte{3, 3, 0, 0, 0, 0, 0, 0,
		0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 198, 51, 100, 1, 10, 0, 0, 2,
		0, 53, 0x9c, 0x40, 0, 8, 0, 0}
	binary.BigEndian.PutUint16(icmpErr[2:], checksum(icmpErr))
	if err := sendRaw4(lan, syscall.IPPROTO_ICMP, sinkAddr, icmpErr); err != nil {
		t.Fatal(err)
	}
	// Untracked: the router's own datagram from its MAP address but a
	// port another CE owns.
	if cfg.Owns(netip.MustParseAddr("192.0.2.18"), 40000) {
		t.Fatal("port 40000 is in the set: pick another")
	}
	ce.MustExec("nft", "add table ip raw; add chain ip raw out { type filter hook output priority raw; }; add rule ip raw out udp dport 5555 notrack")
	err = ce.Do(func() error {
		c, err := net.DialUDP("udp4", &net.UDPAddr{IP: net.IPv4(192, 0, 2, 18), Port: 40000}, &net.UDPAddr{IP: sinkAddr.AsSlice(), Port: 5555})
		if err != nil {
			return err
		}
		defer c.Close()
		// The drop at TC egress is NET_XMIT_DROP: ENOBUFS, which UDP
		// reports only with IP_RECVERR.
		if _, err = c.Write([]byte("not mine")); err != nil && !errors.Is(err, syscall.ENOBUFS) {
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(2 * time.Second)
	var counters map[string]uint64
	for {
		if counters, err = tr.Counters(); err != nil {
			t.Fatal(err)
		}
		if counters["src_not_ours"] >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	var sent []uint16
	for _, p := range capture.Packets() {
		ip, ok := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		if !ok {
			continue
		}
		src, _ := netip.AddrFromSlice(ip.SrcIP)
		udp, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if !ok || src != b.MAPAddress {
			t.Errorf("on the WAN: %v", p)
			continue
		}
		if !cfg.Owns(netip.MustParseAddr("192.0.2.18"), uint16(udp.SrcPort)) {
			t.Errorf("on the WAN: source port %d outside the set", udp.SrcPort)
		}
		sent = append(sent, uint16(udp.DstPort))
	}
	if len(sent) != 1 || sent[0] != 9 {
		t.Errorf("datagrams on the WAN to ports %v, want only the translated one (9)", sent)
	}
	if counters["src_not_ours"] != 2 || counters["ce_4to6"] != 1 {
		t.Errorf("translator counters %v, want src_not_ours 2 (the ICMP error, the untracked datagram) and ce_4to6 1", counters)
	}
}
