package nat

import (
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ti-mo/conntrack"

	"github.com/mapt-go/mapt/mapt"
	"github.com/mapt-go/mapt/testenv"
)

// seed11b is the seed's CE 11b: 192.0.2.8, ports 55296-57343.
func seed11b(t testing.TB, eup string) Config {
	return bindingConfig(t, "2001:db8:ce::/51,192.0.2.0/24,13,a=0", eup, uplink, 1480)
}

// openMixed opens n TCP, UDP and ICMP echo flows from the LAN, all of
// which must succeed.
func openMixed(t *testing.T, lab *natLab, n int) {
	t.Helper()
	for _, proto := range []string{"tcp", "udp", "icmp"} {
		ok, closeFlows, err := openFlows(lab.lan, proto, n, 2*time.Second)
		t.Cleanup(closeFlows)
		if err != nil || ok != n {
			t.Fatalf("%s: %d of %d flows, %v", proto, ok, n, err)
		}
	}
}

// nattedAll lists the translated sources of every TCP, UDP and ICMP entry.
func nattedAll(t *testing.T, ct *conntrack.Conn) []netip.AddrPort {
	t.Helper()
	var out []netip.AddrPort
	for _, p := range []uint8{syscall.IPPROTO_TCP, syscall.IPPROTO_UDP, syscall.IPPROTO_ICMP} {
		out = append(out, natted(t, ct, p)...)
	}
	return out
}

// countIn counts the sources cfg owns and those it does not.
func countIn(srcs []netip.AddrPort, cfg Config) (in, out int) {
	for _, s := range srcs {
		if cfg.Owns(s.Addr(), s.Port()) {
			in++
		} else {
			out++
		}
	}
	return in, out
}

// TestReplace changes the binding under live flows: entries the new
// binding still owns stay, the others are deleted, and new flows use the
// new binding.
func TestReplace(t *testing.T) {
	lab := newNATLab(t)
	nat := openIn(t, lab.ce)
	ct := conntrackIn(t, lab.ce)
	lab.startSink(t)

	a := ex1(t)
	if _, err := nat.Apply(a); err != nil {
		t.Fatal(err)
	}
	openMixed(t, lab, 10)
	if in, out := countIn(nattedAll(t, ct), a); in != 30 || out != 0 {
		t.Fatalf("binding A: %d entries in the set, %d outside; want 30, 0", in, out)
	}

	// A superset of A on the same address keeps every entry.
	b := a
	b.Ports = append(append([]mapt.PortRange(nil), a.Ports...), mapt.PortRange{First: 3000, Last: 3099})
	if changed, err := nat.Apply(b); err != nil || !changed {
		t.Fatalf("apply B: changed %v, %v", changed, err)
	}
	if in, _ := countIn(nattedAll(t, ct), a); in != 30 {
		t.Fatalf("after growing the set: %d of 30 entries left", in)
	}

	// A new address: every entry of the old one goes.
	c := seed11b(t, "2001:db8:ce:11b::/64")
	if _, err := nat.Apply(c); err != nil {
		t.Fatal(err)
	}
	if got := nattedAll(t, ct); len(got) != 0 {
		t.Fatalf("after moving to %s: %d entries of the old binding remain: %v", c.Addr, len(got), got[:min(5, len(got))])
	}
	if list := nftList(t, lab.ce, "list", "table", "ip", TableName); strings.Contains(list, "192.0.2.18") || !strings.Contains(list, "snat to 192.0.2.8:55296-55423") {
		t.Fatalf("table after replace:\n%s", list)
	}
	openMixed(t, lab, 10)
	if in, out := countIn(nattedAll(t, ct), c); in != 30 || out != 0 {
		t.Fatalf("binding C: %d entries in the set, %d outside; want 30, 0", in, out)
	}

	// Same address, another PSID: the ports are no longer ours.
	d := seed11b(t, "2001:db8:ce:11c::/64")
	if d.Addr != c.Addr || d.Ports[0].First != 57344 {
		t.Fatalf("binding D: %s %v", d.Addr, d.Ports)
	}
	if _, err := nat.Apply(d); err != nil {
		t.Fatal(err)
	}
	if got := nattedAll(t, ct); len(got) != 0 {
		t.Fatalf("after the PSID change: %d entries with ports of the old set remain", len(got))
	}
}

// TestTeardown removes our table, and only it, and the conntrack entries
// of the withdrawn address.
func TestTeardown(t *testing.T) {
	lab := newNATLab(t)
	lab.ce.MustExec("nft", "-f", "testdata/fw4.nft")
	fw4 := nftList(t, lab.ce, "-s", "list", "table", "inet", "fw4")
	nat := openIn(t, lab.ce)
	ct := conntrackIn(t, lab.ce)
	lab.startSink(t)
	if _, err := nat.Apply(ex1(t)); err != nil {
		t.Fatal(err)
	}
	openMixed(t, lab, 5)
	// An unrelated flow that must survive: the LAN pings the CE.
	if _, err := lab.lan.Exec("ping", "-c", "1", "-W", "2", "10.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if err := nat.Teardown(); err != nil {
		t.Fatal(err)
	}
	if list := nftList(t, lab.ce, "list", "table", "ip", TableName); list != "" {
		t.Fatalf("table still there:\n%s", list)
	}
	if got := nftList(t, lab.ce, "-s", "list", "table", "inet", "fw4"); got != fw4 {
		t.Fatalf("teardown changed fw4:\n%s\nwas:\n%s", got, fw4)
	}
	if got := nattedAll(t, ct); len(got) != 0 {
		t.Fatalf("%d translated entries survive teardown", len(got))
	}
	flows, err := ct.Dump(nil)
	if err != nil {
		t.Fatal(err)
	}
	foreign := 0
	for _, f := range flows {
		if f.TupleOrig.IP.DestinationAddress == netip.MustParseAddr("10.0.0.1") {
			foreign++
		}
	}
	if foreign != 1 {
		t.Fatalf("teardown deleted foreign entries: %d of the LAN's ping to the CE left", foreign)
	}
	if err := nat.Teardown(); err != nil {
		t.Fatalf("second teardown: %v", err)
	}
}

// TestCoexistence runs our table next to an OpenWrt-style fw4 table with
// its own forward, mangle and (masquerade-free) srcnat chains: ours
// translates, theirs still sees the traffic and is never modified.
func TestCoexistence(t *testing.T) {
	testenv.Require(t, "nft")
	lab := newNATLab(t)
	lab.ce.MustExec("nft", "-f", "testdata/fw4.nft")
	fw4 := nftList(t, lab.ce, "-s", "list", "table", "inet", "fw4")
	nat := openIn(t, lab.ce)
	sink := lab.startSink(t)
	cfg := ex1(t)
	if _, err := nat.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	openMixed(t, lab, 8)
	udp, tcp := sink.seen()
	checkSources(t, "sink tcp", cfg, tcp, 8)
	checkSources(t, "sink udp", cfg, dedup(udp), 8)
	if _, err := nat.Apply(seed11b(t, "2001:db8:ce:11b::/64")); err != nil {
		t.Fatal(err)
	}
	if got := nftList(t, lab.ce, "-s", "list", "table", "inet", "fw4"); got != fw4 {
		t.Fatalf("our apply changed fw4:\n%s\nwas:\n%s", got, fw4)
	}
	counters := nftList(t, lab.ce, "list", "chain", "inet", "fw4", "mangle_forward")
	if strings.Contains(counters, "packets 0 ") {
		t.Fatalf("fw4 saw no forwarded packets:\n%s", counters)
	}
}
