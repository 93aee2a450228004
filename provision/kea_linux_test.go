package provision

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/insomniacslk/dhcp/dhcpv6"

	"github.com/mapt-go/mapt/mapt"
	"github.com/mapt-go/mapt/s46/s46test"
	"github.com/mapt-go/mapt/testenv"
)

// The CE's WAN MAC, so that Kea can reserve the seed prefix for its
// DUID-LL.
const (
	ceMAC  = "02:00:00:00:01:1b"
	ceDUID = "00:03:00:01:02:00:00:00:01:1b"
)

// keaConfig is a kea-dhcp6 configuration for one subnet on eth0 that
// delegates the seed prefix to the CE and sends a MAP-T container.
type keaConfig struct {
	dir         string
	rule        string // s46-rule data: "flags, ea-len, prefix4-len, ipv4, ipv6-prefix"
	portParams  string // s46-portparams data: "offset, psid/psid-len"
	dmr         string // "" leaves the DMR out (an invalid container)
	rapidCommit bool
	// extra option-data and option-def entries (options Kea 2.2 has no
	// definition for: ntp-server 56, s46-priority 111).
	extra      []map[string]any
	optionDefs []map[string]any
}

func (k keaConfig) write(t testing.TB) string {
	t.Helper()
	opts := []map[string]any{
		{"name": "s46-cont-mapt"},
		{"space": "s46-cont-mapt-options", "name": "s46-rule", "data": k.rule},
		{"space": "s46-rule-options", "name": "s46-portparams", "data": k.portParams},
	}
	if k.dmr != "" {
		opts = append(opts, map[string]any{"space": "s46-cont-mapt-options", "name": "s46-dmr", "data": k.dmr})
	}
	opts = append(opts, k.extra...)
	cfg := map[string]any{"Dhcp6": map[string]any{
		"interfaces-config": map[string]any{"interfaces": []string{"eth0"}},
		// No writable /var/lib/kea needed for the server DUID.
		"server-id":      map[string]any{"type": "LLT", "persist": false},
		"lease-database": map[string]any{"type": "memfile", "persist": true, "name": filepath.Join(k.dir, "leases6.csv"), "lfc-interval": 0},
		"renew-timer":    2, "rebind-timer": 3, "preferred-lifetime": 4, "valid-lifetime": 5,
		"subnet6": []any{map[string]any{
			"id": 1, "subnet": "2001:db8:1::/64", "interface": "eth0", "rapid-commit": k.rapidCommit,
			"pd-pools":     []any{map[string]any{"prefix": "2001:db8:ce::", "prefix-len": 51, "delegated-len": 64}},
			"reservations": []any{map[string]any{"duid": ceDUID, "prefixes": []string{seedPrefix}}},
			// The container and its sub-options at the same level, or
			// Kea sends the container empty.
			"option-data": opts,
		}},
		"loggers": []any{map[string]any{"name": "kea-dhcp6", "output_options": []any{map[string]any{"output": "stdout"}}, "severity": "INFO"}},
	}}
	if len(k.optionDefs) > 0 {
		cfg["Dhcp6"].(map[string]any)["option-def"] = k.optionDefs
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(k.dir, "kea-dhcp6.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// startKea runs kea-dhcp6 in the foreground in the isp namespace and
// waits until it serves.
func startKea(t testing.TB, cl *clientLab, k keaConfig) *testenv.Proc {
	t.Helper()
	path := k.write(t)
	if out, err := cl.isp.Exec("kea-dhcp6", "-t", path); err != nil {
		t.Fatalf("kea-dhcp6 -t: %v\n%s", err, out)
	}
	p := cl.isp.Start("env", "KEA_PIDFILE_DIR="+k.dir, "KEA_LOCKFILE_DIR="+k.dir, "kea-dhcp6", "-c", path)
	if !testenv.WaitFor(10*time.Second, func() bool { return strings.Contains(p.Output(), "DHCP6_STARTED") || p.Exited() }) || p.Exited() {
		t.Fatalf("kea-dhcp6 did not start:\n%s", p.Output())
	}
	cl.describe = func() string { return "kea output:\n" + tail(p.Output(), 30) }
	return p
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// clientMessages returns the DHCPv6 message types the CE sent, in order.
func clientMessages(pkts []gopacket.Packet) []dhcpv6.MessageType {
	var out []dhcpv6.MessageType
	for _, p := range pkts {
		u, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if !ok || u.DstPort != dhcpv6.DefaultServerPort || len(u.Payload) == 0 {
			continue
		}
		out = append(out, dhcpv6.MessageType(u.Payload[0]))
	}
	return out
}

// TestKea runs the client against a real kea-dhcp6 2.2 through a lease's
// life: first provisioning of the seed, renewal, a rule change in Kea's
// configuration, a restart of the client, Kea gone past the valid
// lifetime, and a container without DMR.
func TestKea(t *testing.T) {
	testenv.Require(t, "kea-dhcp6", "tcpdump")
	cl := newLinkLab(t)
	cl.ce.MustExec("ip", "link", "set", "eth0", "address", ceMAC)
	kea := keaConfig{dir: cl.lab.Dir(), rule: "0, 13, 24, 192.0.2.0, 2001:db8:ce::/51", portParams: "0, 0/0", dmr: "64:ff9b::/96"}
	proc := startKea(t, cl, kea)
	state := t.TempDir()
	cfg := ClientConfig{StateDir: state, NoRapidCommit: true}

	// First provisioning: the seed prefix and the seed's domain, decoded
	// from what Kea really sends.
	capAll := cl.isp.Capture("eth0", "udp port 547")
	start := time.Now()
	_, stop := cl.start(t, cfg, nil)
	b := cl.next(t, Bound, 10*time.Second)
	t.Logf("Solicit to Bound against Kea: %s", time.Since(start).Round(time.Millisecond))
	if b.Lease.Prefix.String() != seedPrefix {
		t.Fatalf("prefix %s, want %s", b.Lease.Prefix, seedPrefix)
	}
	if len(b.Lease.Domains) != 1 || !reflect.DeepEqual(b.Lease.Domains[0], s46test.SeedDomain(t)) || len(b.Lease.Ignored) != 0 {
		t.Fatalf("domains %+v ignored %q, want the seed's", b.Lease.Domains, b.Lease.Ignored)
	}
	if b.Lease.T1 != 2*time.Second || b.Lease.T2 != 3*time.Second || b.Lease.Preferred != 4*time.Second || b.Lease.Valid != 5*time.Second {
		t.Errorf("timers %+v, want Kea's 2/3/4/5 s", b.Lease)
	}
	bind, err := b.Lease.Domains[0].Derive(b.Lease.Prefix)
	if err != nil || bind.IPv4 != netip.MustParsePrefix("192.0.2.8/32") || bind.PSID() != 27 {
		t.Errorf("binding %v psid %d, %v; want 192.0.2.8 psid 27", bind.IPv4, bind.PSID(), err)
	}

	// Renewal with identical options.
	r := cl.next(t, Renewed, 4*time.Second)
	if d := r.Lease.Obtained.Sub(b.Lease.Obtained); d < 1900*time.Millisecond || d > 3*time.Second {
		t.Errorf("renewed %s after bind, want T1 = 2s", d)
	}
	got := clientMessages(capAll.Packets())
	if len(got) < 3 || got[0] != dhcpv6.MessageTypeSolicit || got[1] != dhcpv6.MessageTypeRequest || got[2] != dhcpv6.MessageTypeRenew {
		t.Errorf("client sent %v, want Solicit, Request, Renew", got)
	}

	// The ISP changes the rule (F flag, PSID offset 6) and reloads Kea.
	kea.rule, kea.portParams = "1, 13, 24, 192.0.2.0, 2001:db8:ce::/51", "6, 0/0"
	ch := reloadKea(t, cl, kea, proc)
	want := mapt.MustParseRule("2001:db8:ce::/51,192.0.2.0/24,13,a=6,fmr")
	if got := ch.Lease.Domains[0].Rules[0]; got != want || ch.Previous == nil || ch.Previous.Domains[0].Rules[0].FMR {
		t.Fatalf("changed rule %s (previous %+v), want %s", got, ch.Previous, want)
	}

	// Restart the client: it resumes with Renew, no new Solicit.
	stop()
	for range drain(cl.events) {
	}
	capRestart := cl.isp.Capture("eth0", "udp port 547")
	_, stop = cl.start(t, cfg, nil)
	res := cl.next(t, Bound, time.Second)
	if !res.Resumed || res.Lease.Prefix.String() != seedPrefix {
		t.Fatalf("after restart %+v, want the resumed lease", res)
	}
	cl.next(t, Renewed, 4*time.Second)
	got = clientMessages(capRestart.Packets())
	if len(got) == 0 || got[0] != dhcpv6.MessageTypeRenew {
		t.Errorf("after restart the client sent %v, want Renew first", got)
	}
	for _, m := range got {
		if m == dhcpv6.MessageTypeSolicit {
			t.Errorf("after restart the client sent %v: a Solicit", got)
		}
	}

	// Kea stops: Renew, Rebind, then expiry at the valid lifetime.
	proc.Stop()
	for range drain(cl.events) {
	}
	last := time.Now()
	e := cl.next(t, Expired, 8*time.Second)
	if d := time.Since(last); d > 5*time.Second+500*time.Millisecond {
		t.Errorf("expired %s after Kea stopped, want within the 5 s valid lifetime", d)
	}
	if e.Lease.Prefix.String() != seedPrefix {
		t.Errorf("expired %s", e.Lease.Prefix)
	}
	if l, err := LoadLease(state); l != nil || err != nil {
		t.Errorf("lease still saved after expiry: %+v %v", l, err)
	}

	// Kea comes back with a container without DMR and rapid commit: the
	// client binds in two messages and ignores the container, saying why.
	stop()
	for range drain(cl.events) {
	}
	kea.dmr, kea.rapidCommit = "", true
	proc = startKea(t, cl, kea)
	capRapid := cl.isp.Capture("eth0", "udp port 547")
	_, stop = cl.start(t, ClientConfig{StateDir: state, ReleaseOnStop: true}, nil)
	nb := cl.next(t, Bound, 5*time.Second)
	if got := clientMessages(capRapid.Packets()); len(got) != 1 || got[0] != dhcpv6.MessageTypeSolicit {
		t.Errorf("rapid commit: client sent %v, want one Solicit", got)
	}
	if len(nb.Lease.Domains) != 0 || len(nb.Lease.Ignored) != 1 || !strings.Contains(nb.Lease.Ignored[0], "0 S46_DMR (91) options") {
		t.Fatalf("lease with invalid container: domains %+v ignored %q", nb.Lease.Domains, nb.Lease.Ignored)
	}
	t.Logf("ignored: %s", nb.Lease.Ignored[0])

	// A clean stop releases the prefix, and Kea knows it.
	stop()
	var rel bool
	for e := range drain(cl.events) {
		rel = rel || e.Kind == Released
	}
	if !rel {
		t.Error("no Released event")
	}
	if !testenv.WaitFor(2*time.Second, func() bool {
		return strings.Contains(proc.Output(), "DHCP6_RELEASE_PD duid=[00:03:00:01:02:00:00:00:01:1b]")
	}) {
		t.Errorf("Kea logged no prefix release:\n%s", tail(proc.Output(), 10))
	}
}

// waitAny returns a channel with the next event, failing the test after
// timeout.
func waitAny(t *testing.T, cl *clientLab, timeout time.Duration) <-chan Event {
	t.Helper()
	out := make(chan Event, 1)
	select {
	case e := <-cl.events:
		out <- e
	case <-time.After(timeout):
		t.Fatalf("no event within %s; %s", timeout, cl.describe())
	}
	return out
}

// reloadKea writes kea's configuration, has the running Kea (proc) reload
// it and returns the client's Changed event; renewals may land before Kea
// has reloaded, anything else fails the test.
func reloadKea(t *testing.T, cl *clientLab, kea keaConfig, proc *testenv.Proc) Event {
	t.Helper()
	kea.write(t)
	if err := proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	var ch Event
	for ch.Kind != Changed {
		ch = <-waitAny(t, cl, 6*time.Second)
		if ch.Kind != Changed && ch.Kind != Renewed {
			t.Fatalf("event %s, want renewed or changed", ch.Kind)
		}
	}
	return ch
}

// keaLANOptions are the options the LAN needs (RFC 3646 DNS servers and
// search list, RFC 5908 NTP) and, with prio, a MAP-E and an lw4o6
// container next to the MAP-T one (always sent: the client asks for MAP-T
// only) and an S46 priority (RFC 8026). Kea 2.2 has no definitions for
// options 56 and 111, so they are defined here, 56 as raw bytes.
func keaLANOptions(prio string) (opts, defs []map[string]any) {
	fqdn := appendName(nil, "ntp.isp.example")
	ntp := fmt.Sprintf("0001001020010db8000600000000000000000123 0003%04x%x", len(fqdn), fqdn)
	opts = []map[string]any{
		{"name": "dns-servers", "data": "2001:db8:6::53, 2001:db8:6::54"},
		{"name": "domain-search", "data": "isp.example, lab.isp.example"},
		{"name": "ntp-server", "code": 56, "csv-format": false, "data": strings.ReplaceAll(ntp, " ", "")},
	}
	defs = []map[string]any{{"name": "ntp-server", "code": 56, "type": "binary"}}
	if prio == "" {
		return opts, defs
	}
	opts = append(opts,
		map[string]any{"name": "s46-priority", "data": prio},
		map[string]any{"name": "s46-cont-mape", "always-send": true},
		map[string]any{"space": "s46-cont-mape-options", "name": "s46-rule", "data": "0, 16, 24, 198.51.100.0, 2001:db8::/40"},
		map[string]any{"space": "s46-cont-mape-options", "name": "s46-br", "data": "2001:db8:6::1"},
		map[string]any{"name": "s46-cont-lw", "always-send": true},
		map[string]any{"space": "s46-cont-lw-options", "name": "s46-br", "data": "2001:db8:6::1"},
		map[string]any{"space": "s46-cont-lw-options", "name": "s46-v4v6bind", "data": "192.0.2.3, 2001:db8:1:cafe::/64"},
	)
	defs = append(defs, map[string]any{"name": "s46-priority", "code": 111, "type": "uint16", "array": true})
	return opts, defs
}

// TestKeaLANOptionsAndPriority runs the client against real Kea offering
// what an ISP's server offers a home router: DNS servers, a search list
// and NTP servers for the LAN, and three softwire containers (MAP-E,
// MAP-T, lw4o6) with an S46 priority (RFC 8026) that puts MAP-E first.
// The client takes MAP-T (the only mechanism it implements), says why,
// and counts the two containers it ignores. Then the ISP drops MAP-T from
// its priority: the MAP-T container is ignored too, and the lease carries
// no domain.
func TestKeaLANOptionsAndPriority(t *testing.T) {
	testenv.Require(t, "kea-dhcp6")
	cl := newLinkLab(t)
	cl.ce.MustExec("ip", "link", "set", "eth0", "address", ceMAC)
	kea := keaConfig{dir: cl.lab.Dir(), rule: "0, 13, 24, 192.0.2.0, 2001:db8:ce::/51", portParams: "0, 0/0", dmr: "64:ff9b::/96"}
	kea.extra, kea.optionDefs = keaLANOptions("94, 95, 96")
	proc := startKea(t, cl, kea)
	c, _ := cl.start(t, ClientConfig{NoRapidCommit: true}, nil)

	b := cl.next(t, Bound, 10*time.Second)
	l := b.Lease
	wantDNS := []netip.Addr{netip.MustParseAddr("2001:db8:6::53"), netip.MustParseAddr("2001:db8:6::54")}
	if !reflect.DeepEqual(l.DNS, wantDNS) || !reflect.DeepEqual(l.Search, []string{"isp.example", "lab.isp.example"}) ||
		!reflect.DeepEqual(l.NTP, []string{"2001:db8:6::123", "ntp.isp.example"}) {
		t.Errorf("LAN options: dns %v search %v ntp %v", l.DNS, l.Search, l.NTP)
	}
	if l.Mechanism != MechanismMAPT || len(l.Domains) != 1 || !reflect.DeepEqual(l.Domains[0], s46test.SeedDomain(t)) {
		t.Fatalf("softwire %q domains %+v, want MAP-T with the seed's domain", l.Mechanism, l.Domains)
	}
	if !reflect.DeepEqual(l.S46Priority, []string{"MAP-E (94)", "MAP-T (95)", "lw4o6 (96)"}) || !strings.Contains(l.Selection, "MAP-E (94) not implemented") {
		t.Errorf("priority %q selection %q", l.S46Priority, l.Selection)
	}
	if len(l.Ignored) != 2 || !strings.Contains(l.Ignored[0], "MAP-E (94) container 1 ignored") || !strings.Contains(l.Ignored[1], "lw4o6 (96) container 1 ignored") {
		t.Errorf("ignored %q", l.Ignored)
	}
	if n := c.Stats().Counters[IgnoredContainer]; n != 2 {
		t.Errorf("ignored containers counted %d, want 2 (stats %+v)", n, c.Stats())
	}
	t.Logf("selection: %s; ignored: %q", l.Selection, l.Ignored)

	// The ISP takes MAP-T out of its priority list.
	kea.extra, kea.optionDefs = keaLANOptions("94, 96")
	ch := reloadKea(t, cl, kea, proc)
	if len(ch.Lease.Domains) != 0 || ch.Lease.Mechanism != "" || !strings.Contains(ch.Lease.Selection, "lists no mechanism this CE implements") ||
		len(ch.Lease.Ignored) != 3 || !strings.Contains(ch.Lease.Ignored[1], "does not list MAP-T") {
		t.Fatalf("after MAP-T left the priority: domains %+v softwire %q selection %q ignored %q", ch.Lease.Domains, ch.Lease.Mechanism, ch.Lease.Selection, ch.Lease.Ignored)
	}
}
