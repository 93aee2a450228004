package agent

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mapt-go/mapt/mapt"
	"github.com/mapt-go/mapt/provision"
)

func TestDeriveAcrossDomains(t *testing.T) {
	domains := []mapt.Domain{
		{Name: "wide", DMR: netip.MustParsePrefix("2001:db8:ffff::/64"), Rules: []mapt.Rule{
			mapt.MustParseRule("2001:db8::/32,198.51.100.0/24,16"),
			mapt.MustParseRule("2001:db9::/32,203.0.113.0/24,16,fmr"),
		}},
		{Name: "seed", DMR: netip.MustParsePrefix("64:ff9b::/96"), Rules: []mapt.Rule{
			mapt.MustParseRule("2001:db8:ce::/51,192.0.2.0/24,13,a=0,fmr"),
			mapt.MustParseRule("2001:db8:cf::/51,192.0.3.0/24,13,a=0"),
		}},
	}
	d, err := Derive(domains, netip.MustParsePrefix("2001:db8:ce:774::/64"))
	if err != nil {
		t.Fatal(err)
	}
	if d.Domain != "seed" || d.DMR != netip.MustParsePrefix("64:ff9b::/96") || d.Binding.IPv4.Addr() != netip.MustParseAddr("192.0.2.59") {
		t.Fatalf("desired = %+v", d)
	}
	if len(d.FMRs) != 1 || d.FMRs[0] != domains[1].Rules[0] {
		t.Fatalf("fmrs = %v", d.FMRs)
	}
	d2, _ := Derive(domains, netip.MustParsePrefix("2001:db8:ce:774::/64"))
	if !d.Equal(d2) {
		t.Fatal("same inputs, unequal desired states")
	}
	d3, _ := Derive(domains, netip.MustParsePrefix("2001:db8:ce:11b::/64"))
	if d.Equal(d3) {
		t.Fatal("different prefixes, equal desired states")
	}
	if _, err := Derive(domains, netip.MustParsePrefix("2001:dba::/56")); err == nil || !strings.Contains(err.Error(), "matches no MAP rule of 2 domains") {
		t.Fatalf("no match: %v", err)
	}
}

func TestHookEnv(t *testing.T) {
	domains := []mapt.Domain{{Name: "x", DMR: netip.MustParsePrefix("64:ff9b::/96"), Rules: []mapt.Rule{mapt.MustParseRule("2001:db8::/40,192.0.2.0/24,16,fmr")}}}
	d, err := Derive(domains, netip.MustParsePrefix("2001:db8:12:3400::/56"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	lease := &provision.Lease{Prefix: d.Binding.EndUserPrefix, Obtained: now.Add(-100 * time.Second), Preferred: 1000 * time.Second, Valid: 2000 * time.Second,
		DNS: []netip.Addr{netip.MustParseAddr("2001:db8:6::53"), netip.MustParseAddr("2001:db8:6::54")}, Search: []string{"isp.example"},
		NTP: []string{"ntp.isp.example"}, Mechanism: provision.MechanismMAPT, S46Priority: []string{"MAP-E (94)", "MAP-T (95)"},
		ServerAddr: netip.MustParseAddr("fe80::1")}
	env := hookEnv(hookInfo{event: "bound", desired: d, prefix: d.Binding.EndUserPrefix, lease: lease, wan: "eth0", uplink: "mapt0", uplinkMTU: 1472, now: now})
	for _, want := range []string{
		"MAPT_EVENT=bound", "MAPT_WAN=eth0", "MAPT_UPLINK=mapt0", "MAPT_IPV4=192.0.2.18/32", "MAPT_IPV4_ADDRESS=192.0.2.18",
		"MAPT_PSID=52", "MAPT_PSID_LEN=8", "MAPT_PSID_OFFSET=6", "MAPT_PORT_COUNT=252",
		"MAPT_MAP_ADDRESS=2001:db8:12:3400:0:c000:212:34", "MAPT_DMR=64:ff9b::/96", "MAPT_PREFIX=2001:db8:12:3400::/56",
		"MAPT_FMRS=2001:db8::/40,192.0.2.0/24,16,a=6,k=8,fmr",
		// What netifd needs for the LAN: lifetimes left now, DNS, search, NTP.
		"MAPT_PREFIX_PREFERRED=900", "MAPT_PREFIX_VALID=1900", "MAPT_DNS=2001:db8:6::53 2001:db8:6::54",
		"MAPT_DNS_SEARCH=isp.example", "MAPT_NTP=ntp.isp.example", "MAPT_SOFTWIRE=map-t", "MAPT_S46_PRIORITY=MAP-E (94),MAP-T (95)",
		"MAPT_SERVER=fe80::1", "MAPT_UPLINK_MTU=1472",
	} {
		if !slices.Contains(env, want) {
			t.Errorf("missing %s in %v", want, env)
		}
	}
	for _, e := range env {
		if strings.HasPrefix(e, "MAPT_PORTS=") && (!strings.HasPrefix(e, "MAPT_PORTS=1232-1235 2256-2259 ") || !strings.HasSuffix(e, " 64720-64723")) {
			t.Errorf("ports: %s", e)
		}
	}
	if env := hookEnv(hookInfo{event: "expired", wan: "eth0", uplink: "mapt0"}); len(env) != 3 {
		t.Errorf("withdrawn env = %v", env)
	}
	// Lifetimes past their end are 0, not negative.
	if env := hookEnv(hookInfo{event: "renewed", lease: lease, now: now.Add(time.Hour)}); !slices.Contains(env, "MAPT_PREFIX_VALID=0") {
		t.Errorf("expired lifetimes: %v", env)
	}
	// No binding from a lease that still delegates a prefix: the hook
	// still learns the prefix (for the LAN).
	if env := hookEnv(hookInfo{event: "bound", prefix: netip.MustParsePrefix("2001:db8:1::/56"), wan: "eth0", uplink: "mapt0"}); !slices.Contains(env, "MAPT_PREFIX=2001:db8:1::/56") {
		t.Errorf("env without binding = %v", env)
	}
}
