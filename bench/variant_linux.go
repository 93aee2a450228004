package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mapt-go/mapt/lab"
	"github.com/mapt-go/mapt/testenv"
)

// Path is a variant brought up: c1 and s of its own copy of the seed's
// topology, with an iperf3 server running on s.
type Path struct {
	Variant string
	Client  *testenv.NS // c1
	Server  *testenv.NS // s
	// BR is the border relay's namespace; its eth0 faces the CEs.
	BR *testenv.NS
	// WANSource and WANDest are the addresses c1's packets to s carry
	// between CE and BR: CE 11b's MAP address and s in the DMR (or
	// tayga's prefix) when translated, IPv4 addresses otherwise.
	WANSource, WANDest string
}

// Variant is one data path under test.
type Variant struct {
	Name string
	// Up builds the variant in new namespaces; everything it creates is
	// removed by t.Cleanup. bin holds ce-agent and br.
	Up func(t testenv.T, bin string) *Path
}

// Variants are the paths of the headline benchmark; the first is the
// baseline.
var Variants = []Variant{
	{Name: "plain", Up: UpPlain},
	{Name: "map-t", Up: UpMAPT},
	{Name: "tayga", Up: UpTayga},
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
)

// UpPlain is the baseline: the seed's topology routing IPv4 end to end.
// The switch segment gets 198.51.100.0/24 (CE 11b .11, BR .1) and the CE
// masquerades its LAN onto .11 as a home router does.
func UpPlain(t testenv.T, _ string) *Path {
	t.Helper()
	testenv.Require(t, "iperf3", "nft")
	s := testenv.NewSeed(t)
	s.BR.Addr("eth0", "198.51.100.1/24")
	s.CE11b.Addr("wan", "198.51.100.11/24")
	s.CE11b.Route("default", "via", "198.51.100.1")
	s.S.Route("198.51.100.0/24", "via", "203.0.113.1")
	nft(t, s.CE11b, s.Lab.Dir(), `table ip bench {
	chain post {
		type nat hook postrouting priority srcnat;
		oifname "wan" masquerade
	}
}
`)
	return ready(t, &Path{Variant: "plain", Client: s.C1, Server: s.S, BR: s.BR, WANSource: "198.51.100.11", WANDest: testenv.SeedServer})
}

// UpMAPT is our MAP-T: the lab of package lab (Kea, br, zero-touch
// ce-agents), once both CEs are bound.
func UpMAPT(t testenv.T, bin string) *Path {
	t.Helper()
	testenv.Require(t, "iperf3")
	l := lab.Up(t, lab.Options{Bin: bin})
	if err := l.WaitProvisioned(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	return ready(t, &Path{Variant: "map-t", Client: l.C1, Server: l.S, BR: l.BR, WANSource: ce11bMAPAddr, WANDest: "64:ff9b::cb00:7138"})
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
	return ready(t, &Path{Variant: "tayga", Client: s.C1, Server: s.S, BR: s.BR, WANSource: ce11bMAPAddr, WANDest: "2001:db8:64::cb00:7138"})
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
	p.Server.Start("iperf3", "-s", "-B", testenv.SeedServer)
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
