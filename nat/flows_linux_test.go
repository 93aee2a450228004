package nat

import (
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/mapt-go/mapt/mapt"
)

// The bindings of the issue: the seed's CE 11b (a = 0, one range of 2048
// ports), RFC 7597 Appendix A example 1 (a = 6, k = 8: 63 ranges of 4
// ports) and a full IPv4 address without sharing.
var cases = []struct {
	name, rule, eup string
	addr            string
	count           int // ports the NAT hands out
	ranges          int
	// fill opens as many flows per protocol as the set holds, then
	// checks that one more fails; otherwise flows flows are opened.
	fill  bool
	flows int
}{
	{"seed-ce11b", "2001:db8:ce::/51,192.0.2.0/24,13,a=0", "2001:db8:ce:11b::/64", "192.0.2.8/32", 2048, 1, true, 0},
	{"rfc7597-ex1", "2001:db8::/40,192.0.2.0/24,16,a=6", "2001:db8:12:3400::/56", "192.0.2.18/32", 252, 63, true, 0},
	{"full-address", "2001:db8:f000::/40,192.0.2.0/24,8", "2001:db8:f02a::/48", "192.0.2.42/32", 65535, 1, false, 300},
	// EA + r < 32: the CE owns 192.0.2.80/30 with all ports.
	{"prefix-30", "2001:db8::/40,192.0.2.0/24,6", "2001:db8:50::/46", "192.0.2.80/30", 65535, 1, false, 300},
}

// TestFlows opens TCP, UDP and ICMP echo flows from the LAN through the CE
// to one destination and checks the conntrack table and the wire: every
// translated port and echo identifier is in the port set, the flows spread
// over the ranges, and when the set is full (and only then) the next flow
// fails.
func TestFlows(t *testing.T) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := newNATLab(t)
			cfg := bindingConfig(t, tc.rule, tc.eup, uplink, 1480)
			if cfg.Addr != netip.MustParsePrefix(tc.addr) || cfg.Count() != tc.count || len(cfg.Ports) != tc.ranges {
				t.Fatalf("binding: %s, %d ports in %d ranges; want %s, %d in %d", cfg.Addr, cfg.Count(), len(cfg.Ports), tc.addr, tc.count, tc.ranges)
			}
			if _, err := openIn(t, n.ce).Apply(cfg); err != nil {
				t.Fatal(err)
			}
			sink := n.startSink(t)
			capture := n.sink.Capture("eth0", "ip")
			ct := conntrackIn(t, n.ce)
			want := tc.flows
			if tc.fill {
				want = tc.count
			}
			for _, proto := range []string{"tcp", "udp", "icmp"} {
				start := time.Now()
				ok, closeFlows, err := openFlows(n.lan, proto, want, 2*time.Second)
				t.Cleanup(closeFlows)
				if err != nil {
					t.Fatal(err)
				}
				if ok != want {
					t.Fatalf("%s: flow %d of %d failed; the set has %d ports", proto, ok+1, want, tc.count)
				}
				t.Logf("%s: %d flows to one destination in %v", proto, ok, time.Since(start).Round(time.Millisecond))
				if tc.fill {
					extra, closeExtra, err := openFlows(n.lan, proto, 1, 1500*time.Millisecond)
					closeExtra()
					if err != nil {
						t.Fatal(err)
					}
					if extra != 0 {
						t.Fatalf("%s: flow %d succeeded with all %d ports in use", proto, want+1, tc.count)
					}
				}
			}
			for _, proto := range []struct {
				name string
				num  uint8
			}{{"tcp", syscall.IPPROTO_TCP}, {"udp", syscall.IPPROTO_UDP}, {"icmp", syscall.IPPROTO_ICMP}} {
				got := natted(t, ct, proto.num)
				checkSources(t, "conntrack "+proto.name, cfg, got, want)
			}
			udp, tcp := sink.seen()
			checkSources(t, "sink tcp", cfg, tcp, want)
			checkSources(t, "sink udp", cfg, dedup(udp), want)
			byProto := map[string][]netip.AddrPort{}
			for _, w := range wireSources(capture.Packets()) {
				byProto[w.proto] = append(byProto[w.proto], w.src)
			}
			for proto, srcs := range byProto {
				switch proto {
				case "tcp", "udp", "icmp":
					checkSources(t, "wire "+proto, cfg, dedup(srcs), want)
				default:
					t.Errorf("wire: unexpected %s packets from the CE: %v", proto, srcs[:min(3, len(srcs))])
				}
			}
			if len(byProto) != 3 {
				t.Errorf("wire: saw protocols %v, want tcp, udp, icmp", byProto)
			}
		})
	}
}

// checkSources asserts that srcs are want distinct ports of cfg, spread
// over every range the number of flows can reach.
func checkSources(t *testing.T, what string, cfg Config, srcs []netip.AddrPort, want int) {
	t.Helper()
	ports := map[netip.AddrPort]bool{}
	ranges := map[mapt.PortRange]bool{}
	for _, s := range srcs {
		if !cfg.Owns(s.Addr(), s.Port()) {
			t.Errorf("%s: source %s is outside %s ports %v", what, s, cfg.Addr, cfg.Ports)
			continue
		}
		if ports[s] {
			t.Errorf("%s: %s used twice towards one destination", what, s)
		}
		ports[s] = true
		for _, r := range cfg.Ports {
			if r.First <= s.Port() && s.Port() <= r.Last {
				ranges[r] = true
			}
		}
	}
	if len(srcs) != want {
		t.Errorf("%s: %d flows, want %d", what, len(srcs), want)
	}
	// Round robin over ranges of equal size reaches min(flows, ranges).
	if wantRanges := min(want, len(cfg.Ports)); len(ranges) != wantRanges {
		t.Errorf("%s: flows used %d of %d ranges, want %d", what, len(ranges), len(cfg.Ports), wantRanges)
	}
}

func dedup(in []netip.AddrPort) []netip.AddrPort {
	seen := map[netip.AddrPort]bool{}
	var out []netip.AddrPort
	for _, a := range in {
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out
}
