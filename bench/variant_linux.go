package bench

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mapt-go/mapt/lab"
	"github.com/mapt-go/mapt/mapt"
	"github.com/mapt-go/mapt/nat"
	"github.com/mapt-go/mapt/testenv"
)

// Path is a variant brought up: c1 and s of its own copy of the seed's
// topology, with an iperf3 server running on s.
type Path struct {
	Variant string
	Client  *testenv.NS // c1
	Server  *testenv.NS // s
	// CE is CE 11b's namespace (c1's router).
	CE *testenv.NS
	// BR is the border relay's namespace; its eth0 faces the CEs.
	BR *testenv.NS
	// WANSource and WANDest are the addresses c1's packets to s carry
	// between CE and BR: CE 11b's MAP address and s in the DMR (or
	// tayga's prefix) when translated, IPv4 addresses otherwise.
	WANSource, WANDest string
	// PortSet: c1's packets leave the CE with a source port of CE 11b's
	// port set (55296-57343), not wherever masquerade put them.
	PortSet bool
	// iperf is the iperf3 server on Server.
	iperf *testenv.Proc
	// noProfile: the path runs through user space (tayga), which the
	// profile's path (sender and ksoftirqd) does not see.
	noProfile bool
}

// Variant is one data path under test.
type Variant struct {
	Name string
	// Up builds the variant in new namespaces; everything it creates is
	// removed by t.Cleanup. bin holds ce-agent and br.
	Up func(t testenv.T, bin string) *Path
}

// Variants are the paths of the headline benchmark; the first is the
// baseline. The first four add one part of MAP-T's CE at a time on the
// same topology (issue 15, attribution): plain routing and masquerade,
// then our nftables table in place of masquerade, then the uplink TUN
// device between LAN and WAN, then the translators of CE and BR;
// map-t-wan is map-t with ce-agent's opt-in fast path (--inbound wan).
var Variants = []Variant{
	{Name: "plain", Up: UpPlain},
	{Name: "nft", Up: UpNFT},
	{Name: "nft+tun", Up: UpNFTTUN},
	{Name: "map-t", Up: UpMAPT},
	{Name: "map-t-wan", Up: UpMAPTWAN},
	{Name: "tayga", Up: UpTayga},
}

// Describe says, for the report, what each variant adds to the one before
// it (or what it is).
var Describe = map[string]string{
	"plain":     "IPv4 routing, CE masquerades onto its WAN address",
	"nft":       "our nftables table (package nat, as ce-agent programs it) instead of masquerade",
	"nft+tun":   "+ the uplink TUN device: LAN IPv4 routed into it, TC redirects to and from the WAN, no translation",
	"map-t":     "+ the translators (CE and BR): our MAP-T, zero-touch lab",
	"map-t-wan": "map-t with ce-agent --inbound wan: what the CE translates from the BR goes on into its stack on the WAN, not received again on the uplink",
	"tayga":     "tayga (userspace SIIT over TUN) as both translators",
}

// VariantNames lists the names of vs.
func VariantNames(vs []Variant) []string {
	var n []string
	for _, v := range vs {
		n = append(n, v.Name)
	}
	return n
}

// SelectVariants returns the variants named (in the order of Variants),
// and an error for a name that is not one. The baseline comes first
// whether named or not: the ratios need it.
func SelectVariants(names []string) ([]Variant, error) {
	want := map[string]bool{Variants[0].Name: true}
	for _, n := range names {
		found := false
		for _, v := range Variants {
			found = found || v.Name == n
		}
		if !found {
			return nil, fmt.Errorf("bench: no variant %q (have %s)", n, strings.Join(VariantNames(Variants), ", "))
		}
		want[n] = true
	}
	var out []Variant
	for _, v := range Variants {
		if want[v.Name] {
			out = append(out, v)
		}
	}
	return out, nil
}

// CE 11b's binding in the seed domain (lab.DomainYAML): the tayga variant
// reuses it so that its IPv6 packets look like MAP-T's.
const (
	ce11bIPv4    = "192.0.2.8"
	ce11bPorts   = "55296-57343"
	ce11bMAPAddr = "2001:db8:ce:11b:0:c000:208:1b"
	ce11bPrefix  = "2001:db8:ce:11b::/64"
	// taygaPrefix stands in for the DMR 64:ff9b::/96: tayga 0.9.2 refuses
	// to translate the lab's RFC 5737 addresses (203.0.113.56) with the
	// well-known prefix (RFC 6052 s3.1), so it gets a network-specific one.
	taygaPrefix = "2001:db8:64::/96"
	// mss is what MAP-T's CE clamps to: uplink MTU 1480 - 40.
	mss = "1440"
	// uplinkName and uplinkMTU are ce-agent's uplink device
	// (agent.DefaultUplink) and its MTU on the lab's 1500-byte WAN.
	uplinkName = "mapt0"
	uplinkMTU  = 1480
)

// UpPlain is the baseline: the seed's topology routing IPv4 end to end.
// The switch segment gets 198.51.100.0/24 (CE 11b .11, BR .1) and the CE
// masquerades its LAN onto .11 as a home router does.
func UpPlain(t testenv.T, _ string) *Path {
	t.Helper()
	testenv.Require(t, "iperf3", "nft")
	s := testenv.NewSeed(t)
	plainWAN(s)
	s.CE11b.Route("default", "via", "198.51.100.1")
	nft(t, s.CE11b, s.Lab.Dir(), `table ip bench {
	chain post {
		type nat hook postrouting priority srcnat;
		oifname "wan" masquerade
	}
}
`)
	return ready(t, &Path{Variant: "plain", Client: s.C1, Server: s.S, CE: s.CE11b, BR: s.BR, WANSource: "198.51.100.11", WANDest: testenv.SeedServer})
}

// plainWAN gives the switch segment plain's IPv4 addresses and routes.
func plainWAN(s *testenv.Seed) {
	s.BR.Addr("eth0", "198.51.100.1/24")
	s.CE11b.Addr("wan", "198.51.100.11/24")
	s.S.Route("198.51.100.0/24", "via", "203.0.113.1")
}

// ce11bNAT is MAP-T's CE 11b NAT configuration (nat.FromBinding of its
// binding: one shared address, ports 55296-57343, so the mesh chains too)
// on another uplink and address.
func ce11bNAT(uplink string, addr netip.Addr) nat.Config {
	return nat.Config{Uplink: uplink, Addr: netip.PrefixFrom(addr, 32), Ports: []mapt.PortRange{{First: 55296, Last: 57343}},
		MTU: uplinkMTU, MeshAlias: nat.MeshAlias}
}

// applyNAT programs a nat table into ns, as ce-agent does.
func applyNAT(t testenv.T, ns *testenv.NS, cfg nat.Config) {
	t.Helper()
	n, err := nat.Open(int(ns.Handle()), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if _, err := n.Apply(cfg); err != nil {
		t.Fatalf("bench: %s: %v", ns.Short, err)
	}
}

// UpNFT is plain with our nftables table (package nat, the table
// ce-agent programs) in place of masquerade: the CE NATs its LAN into
// CE 11b's port set on its WAN address and clamps the MSS to 1440; no
// uplink device, no translation.
func UpNFT(t testenv.T, _ string) *Path {
	t.Helper()
	testenv.Require(t, "iperf3")
	s := testenv.NewSeed(t)
	plainWAN(s)
	s.CE11b.Route("default", "via", "198.51.100.1")
	applyNAT(t, s.CE11b, ce11bNAT("wan", netip.MustParseAddr("198.51.100.11")))
	return ready(t, &Path{Variant: "nft", Client: s.C1, Server: s.S, CE: s.CE11b, BR: s.BR, WANSource: "198.51.100.11", WANDest: testenv.SeedServer, PortSet: true})
}

// UpNFTTUN is nft with MAP-T's uplink: a TUN device "mapt0" (MTU 1480,
// CE 11b's IPv4 address 192.0.2.8, the IPv4 default route) as ce-agent
// creates it, our table on it, and TC programs moving IPv4 between it and
// the WAN untranslated (see attachUplink). The WAN keeps 198.51.100.11
// for its neighbours; a second default route via the BR, on the WAN, is
// what bpf_redirect_neigh's route lookup (bound to the WAN) finds. The BR
// routes 192.0.2.8 to the CE.
func UpNFTTUN(t testenv.T, _ string) *Path {
	t.Helper()
	testenv.Require(t, "iperf3")
	s := testenv.NewSeed(t)
	plainWAN(s)
	ce := s.CE11b
	ce.MustExec("ip", "tuntap", "add", "dev", uplinkName, "mode", "tun")
	ce.MustExec("ip", "link", "set", "dev", uplinkName, "mtu", fmt.Sprint(uplinkMTU), "up")
	ce.Addr(uplinkName, ce11bIPv4+"/32")
	ce.Route("default", "dev", uplinkName, "src", ce11bIPv4)
	ce.Route("default", "via", "198.51.100.1", "dev", "wan", "metric", "100")
	s.BR.Route(ce11bIPv4+"/32", "via", "198.51.100.11")
	applyNAT(t, ce, ce11bNAT(uplinkName, netip.MustParseAddr(ce11bIPv4)))
	attachUplink(t, ce, uplinkName, "wan")
	return ready(t, &Path{Variant: "nft+tun", Client: s.C1, Server: s.S, CE: s.CE11b, BR: s.BR, WANSource: ce11bIPv4, WANDest: testenv.SeedServer, PortSet: true})
}

// UpMAPT is our MAP-T: the lab of package lab (Kea, br, zero-touch
// ce-agents), once both CEs are bound.
func UpMAPT(t testenv.T, bin string) *Path { return upMAPT(t, bin, "map-t") }

// UpMAPTWAN is UpMAPT with the CEs' translated inbound packets going on
// into the stack on the WAN (ce-agent --inbound wan).
func UpMAPTWAN(t testenv.T, bin string) *Path {
	return upMAPT(t, bin, "map-t-wan", "--inbound", "wan")
}

func upMAPT(t testenv.T, bin, name string, agentArgs ...string) *Path {
	t.Helper()
	testenv.Require(t, "iperf3")
	l := lab.Up(t, lab.Options{Bin: bin, AgentArgs: agentArgs})
	if err := l.WaitProvisioned(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	return ready(t, &Path{Variant: name, Client: l.C1, Server: l.S, CE: l.CE11b, BR: l.BR, WANSource: ce11bMAPAddr, WANDest: "64:ff9b::cb00:7138", PortSet: true})
}

// UpTayga puts tayga (userspace SIIT over TUN) in place of both
// translators. CE 11b: LAN NAT44 into 192.0.2.8:55296-57343 (CE 11b's
// MAP binding), MSS clamped to 1440 as MAP-T's CE does, IPv4 default route
// into tayga's TUN (MTU 1480), which maps 192.0.2.8 to CE 11b's MAP
// address and the destination into taygaPrefix (RFC 6052 /96). BR: that
// prefix and 192.0.2.0/24 routed into its tayga, which maps back with the
// same static entry.
func UpTayga(t testenv.T, _ string) *Path {
	t.Helper()
	testenv.Require(t, "iperf3", "nft", "tayga")
	s := testenv.NewSeed(t)
	dir := s.Lab.Dir()

	startTayga(t, s.CE11b, dir, "ce", fmt.Sprintf("ipv4-addr 192.168.255.1\nipv6-addr 2001:db8:ce:11b::64\nprefix %s\nmap %s %s\n", taygaPrefix, ce11bIPv4, ce11bMAPAddr), "1480")
	s.CE11b.Route("default", "dev", "nat64")
	s.CE11b.Route(ce11bMAPAddr+"/128", "dev", "nat64")
	nft(t, s.CE11b, dir, fmt.Sprintf(`table ip bench {
	chain post {
		type nat hook postrouting priority srcnat;
		oifname "nat64" meta l4proto { tcp, udp } snat to %s:%s
		oifname "nat64" snat to %s
	}
	chain clamp {
		type filter hook forward priority mangle;
		tcp flags syn tcp option maxseg size set %s
	}
}
`, ce11bIPv4, ce11bPorts, ce11bIPv4, mss))

	startTayga(t, s.BR, dir, "br", fmt.Sprintf("ipv4-addr 192.0.2.1\nipv6-addr 2001:db8:6::64\nprefix %s\nmap %s %s\n", taygaPrefix, ce11bIPv4, ce11bMAPAddr), "1500")
	s.BR.Route("192.0.2.0/24", "dev", "nat64")
	s.BR.Route(taygaPrefix, "dev", "nat64")
	s.BR.Route(ce11bPrefix, "via", testenv.SeedCE11bWAN)
	return ready(t, &Path{Variant: "tayga", Client: s.C1, Server: s.S, CE: s.CE11b, BR: s.BR, WANSource: ce11bMAPAddr, WANDest: "2001:db8:64::cb00:7138", PortSet: true, noProfile: true})
}

// startTayga creates tayga's TUN device "nat64" in ns (persistent, so it
// can be configured before tayga runs; it goes with the namespace), brings
// it up with the MTU and starts tayga on it in the foreground.
func startTayga(t testenv.T, ns *testenv.NS, dir, name, conf, mtu string) {
	t.Helper()
	path := filepath.Join(dir, "tayga-"+name+".conf")
	if err := os.WriteFile(path, []byte("tun-device nat64\n"+conf), 0o644); err != nil {
		t.Fatal(err)
	}
	ns.MustExec("tayga", "-c", path, "--mktun")
	ns.MustExec("ip", "link", "set", "dev", "nat64", "up", "mtu", mtu)
	p := ns.Start("tayga", "-c", path, "--nodetach")
	if err := p.Wait(200 * time.Millisecond); err == nil || !strings.Contains(err.Error(), "still running") {
		t.Fatalf("bench: tayga on %s exited: %v\n%s", ns.Short, err, p.Output())
	}
}

// nft loads a ruleset into ns; the table goes with the namespace.
func nft(t testenv.T, ns *testenv.NS, dir, ruleset string) {
	t.Helper()
	path := filepath.Join(dir, "bench-"+ns.Short+".nft")
	if err := os.WriteFile(path, []byte(ruleset), 0o644); err != nil {
		t.Fatal(err)
	}
	ns.MustExec("nft", "-f", path)
}

// ready starts iperf3's server on s and waits until c1 reaches s (ping)
// and the server listens.
func ready(t testenv.T, p *Path) *Path {
	t.Helper()
	p.iperf = p.Server.Start("iperf3", "-s", "-B", testenv.SeedServer)
	var last string
	ok := testenv.WaitFor(15*time.Second, func() bool {
		out, err := p.Client.Exec("ping", "-c", "1", "-W", "1", testenv.SeedServer)
		if err != nil {
			last = out
			return false
		}
		out, err = p.Server.Exec("ss", "-Hltn", "sport", "= :5201")
		last = "iperf3 not listening: " + out
		return err == nil && strings.Contains(out, "5201")
	})
	if !ok {
		t.Fatalf("bench: %s: path c1 -> s not ready: %s", p.Variant, last)
	}
	return p
}
