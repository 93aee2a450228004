package relay

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/mapt-go/mapt/domainfile"
	"github.com/mapt-go/mapt/testenv"
)

// TestPrepareHost: forwarding off refuses to start naming the sysctl;
// reverse-path filtering goes off on the IPv6 side only (other devices
// keep what "all" gave them) and IPv6 on the IPv4 side comes on, both
// logged. The namespace test with traffic
// is lab's TestBRStrictRPFilter.
func TestPrepareHost(t *testing.T) {
	l := testenv.New(t)
	ns := l.NS("br")
	peer := l.NS("peer")
	l.Veth(ns, "eth0", peer, "eth0")
	l.Veth(ns, "eth1", peer, "eth1")
	f := &domainfile.File{BR: domainfile.BR{IPv6Interface: "eth0", IPv4Interface: "eth1"}}
	var logs strings.Builder
	log := slog.New(slog.NewTextHandler(&logs, nil))
	err := ns.Do(func() error { return prepareHost(f, log) })
	if err == nil || !strings.Contains(err.Error(), "net.ipv4.conf.all.forwarding is 0") {
		t.Fatalf("forwarding off: %v", err)
	}
	ns.Forwarding()
	ns.Sysctl("net.ipv4.conf.all.rp_filter", "1")
	ns.Sysctl("net.ipv4.conf.eth0.rp_filter", "1")
	ns.Sysctl("net.ipv6.conf.eth1.disable_ipv6", "1")
	if err := ns.Do(func() error { return prepareHost(f, log) }); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"all": "0", "eth0": "0", "eth1": "1", "lo": "1", "default": "1"} {
		if v := strings.TrimSpace(ns.MustExec("sysctl", "-n", "net.ipv4.conf."+key+".rp_filter")); v != want {
			t.Errorf("%s rp_filter %s, want %s", key, v, want)
		}
	}
	if v := strings.TrimSpace(ns.MustExec("sysctl", "-n", "net.ipv6.conf.eth1.disable_ipv6")); v != "0" {
		t.Errorf("eth1 disable_ipv6 %s, want 0", v)
	}
	if !strings.Contains(logs.String(), "net.ipv4.conf.eth0.rp_filter") || !strings.Contains(logs.String(), "net.ipv6.conf.eth1.disable_ipv6") {
		t.Errorf("nothing logged:\n%s", logs.String())
	}
	// Off stays off, and nothing is said.
	logs.Reset()
	if err := ns.Do(func() error { return prepareHost(f, log) }); err != nil || logs.Len() != 0 {
		t.Errorf("a host that needs nothing: %v, logged %q", err, logs.String())
	}
}
