package dataplane

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/mapt-go/mapt/mapt"
	"github.com/mapt-go/mapt/testenv"
)

// TestNetnsCEToCE puts two CEs on the BR's IPv6 link (a bridge in its own
// namespace) and sends ping and TCP from the host behind one to the host
// behind the other: through the BR's hairpin when the CEs have no FMR,
// straight from CE to CE (mesh, RFC 7599 s5.1) when they have.
//
//	client1 192.0.2.59 -- ce1 (2001:db8:ce:774::/64) --+
//	                                                  sw -- br -- (v4 side: server)
//	client2 192.0.2.60 -- ce2 (2001:db8:ce:794::/64) --+
func TestNetnsCEToCE(t *testing.T) {
	for _, mesh := range []bool{false, true} {
		name := "hairpin"
		if mesh {
			name = "mesh"
		}
		t.Run(name, func(t *testing.T) {
			testenv.Require(t, "ip", "ping")
			l := testenv.New(t)
			sw, br, server := l.NS("sw"), l.NS("br"), l.NS("server")
			sw.Bridge("sw0")
			l.Veth(sw, "p0", br, "eth0")
			l.Veth(br, "eth1", server, "eth0")
			sw.MustExec("ip", "link", "set", "dev", "p0", "master", "sw0")
			br.Forwarding()
			br.Addr("eth0", "2001:db8:f::1/64")
			br.Addr("eth1", "198.51.100.1/24")
			server.Addr("eth0", "198.51.100.7/24")

			var fmrs []mapt.Rule
			if mesh {
				fmrs = []mapt.Rule{labRule}
			}
			type site struct {
				client, ce *testenv.NS
				tr         *Translator
				b          mapt.Binding
			}
			sites := make([]site, 2)
			for i, eup := range []string{"2001:db8:ce:774::/64", "2001:db8:ce:794::/64"} {
				s := &sites[i]
				s.b = mustDerive(labRule, netip.MustParsePrefix(eup))
				s.client, s.ce = l.NS(fmt.Sprintf("c%d", i+1)), l.NS(fmt.Sprintf("ce%d", i+1))
				port := fmt.Sprintf("p%d", i+1)
				l.Veth(sw, port, s.ce, "wan0")
				sw.MustExec("ip", "link", "set", "dev", port, "master", "sw0")
				l.Veth(s.client, "eth0", s.ce, "lan0")
				v4 := s.b.IPv4.Addr().String()
				s.client.Addr("eth0", v4+"/32")
				s.client.MustExec("ip", "link", "set", "dev", "eth0", "mtu", "1480")
				s.client.Route("10.9.0.1", "dev", "eth0")
				s.client.Route("default", "via", "10.9.0.1", "dev", "eth0")
				r := s.b.PortSet.Range(0)
				s.client.Sysctl("net.ipv4.ip_local_port_range", fmt.Sprintf("%d %d", r.First, r.Last))
				s.ce.Forwarding()
				s.ce.Addr("lan0", "10.9.0.1/24")
				s.ce.Route(v4+"/32", "dev", "lan0")
				s.ce.MustExec("ip", "tuntap", "add", "dev", "mapt0", "mode", "tun")
				s.ce.MustExec("ip", "link", "set", "dev", "mapt0", "mtu", "1480", "up")
				s.ce.Route("default", "dev", "mapt0")
				wan := fmt.Sprintf("2001:db8:f::%d", i+2)
				s.ce.Addr("wan0", wan+"/64")
				s.ce.Route("default", "via", "2001:db8:f::1")
				br.Route(eup, "via", wan)
				err := s.ce.Do(func() error {
					var err error
					if s.tr, err = Load(Config{Mode: CE, Binding: s.b, DMR: labDMR, FMRs: fmrs}); err != nil {
						return err
					}
					return s.tr.AttachCE("mapt0", "wan0", AttachAuto)
				})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.tr.Close() })
			}
			var brT *Translator
			if err := br.Do(func() error {
				var err error
				if brT, err = Load(Config{Mode: BR, DMR: labDMR, FMRs: []mapt.Rule{labRule}}); err != nil {
					return err
				}
				return brT.AttachBR("eth0", "eth1", "", AttachAuto)
			}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { brT.Close() })

			// Each router on the way decrements the TTL once: CE1, the BR
			// (hairpin or plain IPv6 forwarding) and CE2: 64 -> 61.
			out := sites[0].client.MustExec("ping", "-c", "3", "-i", "0.2", "-W", "2", "-e", "41005", "192.0.2.60")
			if !strings.Contains(out, "3 received") || !strings.Contains(out, "ttl=61") {
				t.Fatalf("ping ce1 -> ce2:\n%s", out)
			}
			x := &lab{client: sites[0].client, server: sites[1].client}
			tcpBulkTo(t, x, "192.0.2.60:41010", 1<<20)
			// An ICMP error from the far host comes back the same way
			// (through the hairpin, the inner packet rewritten too).
			expectRefused(t, sites[0].client, "192.0.2.60:41999")

			c, _ := brT.Counters()
			if mesh && (c["br_hairpin"] != 0 || c["br_6to4"] != 0) {
				t.Errorf("mesh traffic went through the BR's translator: %v", c)
			}
			if !mesh && c["br_hairpin"] == 0 {
				t.Errorf("no hairpin counted: %v", c)
			}
			for i, s := range sites {
				if d := drops(t, s.tr); len(d) > 0 {
					t.Errorf("ce%d drops: %v", i+1, d)
				}
			}
			if d := drops(t, brT); len(d) > 0 {
				t.Errorf("br drops: %v", d)
			}
		})
	}
}
