package provision

import (
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"

	"github.com/mapt-go/mapt/s46"
	"github.com/mapt-go/mapt/s46/s46test"
)

// opt is one top-level option in wire form.
func opt(code dhcpv6.OptionCode, data []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(code))
	b = binary.BigEndian.AppendUint16(b, uint16(len(data)))
	return append(b, data...)
}

func TestParseMessage(t *testing.T) {
	id := testIdentity(t)
	good := testReply(dhcpv6.MessageTypeReply, id, 0, 0, []*dhcpv6.OptIAPrefix{iaPrefix("2001:db8:ce:11b::/64", 300*time.Second, 600*time.Second)}, nil).ToBytes()
	with := func(extra ...[]byte) []byte {
		b := append([]byte(nil), good...)
		for _, e := range extra {
			b = append(b, e...)
		}
		return b
	}
	name := func(names ...string) []byte {
		var b []byte
		for _, n := range names {
			b = appendName(b, n)
		}
		return b
	}
	tests := []struct {
		name    string
		wire    []byte
		err     string   // whole message dropped
		ignored []string // substrings of the ignored lines, in order
		opts    serverOptions
	}{
		{name: "plain", wire: good},
		{name: "header only", wire: good[:4]},
		{name: "short header", wire: good[:3], err: "shorter than the 4-byte header"},
		{name: "relay reply", wire: append([]byte{13}, good[1:]...), err: "relay message"},
		{name: "option runs past the end", wire: good[:len(good)-3], err: "exceeds the"},
		{name: "broken IA_PD is fatal", wire: append(append([]byte(nil), good[:4]...), opt(dhcpv6.OptionIAPD, []byte{1, 2, 3})...), err: "IAPD (25)"},
		{name: "dns and search and ntp", wire: with(
			opt(OptionDNSServers, s46test.Hex(t, "20010db8000600000000000000000053 ff020000000000000000000000000001")),
			opt(OptionDomainList, name("isp.example", "b_c.example")),
			opt(OptionNTPServer, append(opt(2, s46test.Hex(t, "ff050000000000000000000000000101")), opt(3, name("ntp.isp.example"))...))),
			opts: serverOptions{dns: []netip.Addr{netip.MustParseAddr("2001:db8:6::53")}, search: []string{"isp.example", "b_c.example"},
				ntp: []string{"ff05::101", "ntp.isp.example"}}},
		{name: "dns of bad length ignored, rest kept", wire: with(opt(OptionDNSServers, make([]byte, 15)), opt(OptionDomainList, name("isp.example"))),
			ignored: []string{"option 23 ignored: DNS servers: length 15"}, opts: serverOptions{search: []string{"isp.example"}}},
		{name: "shell injection in a search domain", wire: with(opt(OptionDomainList, name("isp.example", "$(reboot).example"))),
			ignored: []string{`option 24 ignored: domain list: label "$(reboot)": byte 0x24`}},
		{name: "newline in an NTP name", wire: with(opt(OptionNTPServer, opt(3, name("ntp\nnameserver 6.6.6.6")))),
			ignored: []string{"option 56 ignored: NTP server: suboption 3"}},
		{name: "compressed name", wire: with(opt(OptionDomainList, []byte{3, 'i', 's', 'p', 0xc0, 0})),
			ignored: []string{"compression or extended labels are not allowed"}},
		{name: "unterminated name", wire: with(opt(OptionDomainList, []byte{3, 'i', 's', 'p'})), ignored: []string{"not terminated"}},
		{name: "ntp without servers", wire: with(opt(OptionNTPServer, opt(9, []byte{1}))), ignored: []string{"no server address or name"}},
		{name: "broken elapsed time ignored", wire: with(opt(dhcpv6.OptionElapsedTime, []byte{1})), ignored: []string{"option Elapsed Time (8) ignored"}},
		{name: "more than 16 DNS servers", wire: with(opt(OptionDNSServers, make([]byte, 0))), ignored: []string{"length 0"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := parseMessage(tc.wire)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(r.ignored) != len(tc.ignored) {
				t.Fatalf("ignored %q, want %q", r.ignored, tc.ignored)
			}
			for i, want := range tc.ignored {
				if !strings.Contains(r.ignored[i], want) {
					t.Errorf("ignored[%d] = %q, want %q", i, r.ignored[i], want)
				}
			}
			if !reflect.DeepEqual(r.opts, tc.opts) {
				t.Errorf("options %+v, want %+v", r.opts, tc.opts)
			}
			if len(tc.wire) > 4 && r.m.Options.GetOne(dhcpv6.OptionClientID) == nil {
				t.Error("client-id lost")
			}
		})
	}
	// The lists are bounded.
	var many []byte
	for i := range 40 {
		a := netip.MustParseAddr("2001:db8::1").As16()
		a[15] = byte(i + 1)
		many = append(many, a[:]...)
	}
	r, err := parseMessage(with(opt(OptionDNSServers, many)))
	if err != nil || len(r.opts.dns) != maxListed {
		t.Fatalf("40 DNS servers: %v, kept %d, want %d", err, len(r.opts.dns), maxListed)
	}
}

func TestSelectS46(t *testing.T) {
	seed := &dhcpv6.OptionGeneric{OptionCode: s46.OptionContMAPT, OptionData: s46test.Hex(t, s46test.KeaSeedOption95)[4:]}
	bad := &dhcpv6.OptionGeneric{OptionCode: s46.OptionContMAPT, OptionData: s46test.Hex(t, s46test.RuleTLV(s46test.SeedRule+s46test.SeedPP))}
	mape := &dhcpv6.OptionGeneric{OptionCode: s46.OptionContMAPE, OptionData: s46test.Hex(t, s46test.RuleTLV(s46test.SeedRule+s46test.SeedPP)+"005a 0010 20010db8000600000000000000000001")}
	lw := &dhcpv6.OptionGeneric{OptionCode: s46.OptionContLW, OptionData: s46test.Hex(t, "005a 0010 20010db8000600000000000000000001")}
	prio := func(codes ...uint16) dhcpv6.Option {
		var b []byte
		for _, c := range codes {
			b = binary.BigEndian.AppendUint16(b, c)
		}
		return &dhcpv6.OptionGeneric{OptionCode: OptionS46Prio, OptionData: b}
	}
	tests := []struct {
		name      string
		opts      dhcpv6.Options
		domains   int
		mechanism string
		priority  []string
		why       string
		ignored   []string
	}{
		{name: "MAP-T alone", opts: dhcpv6.Options{seed}, domains: 1, mechanism: MechanismMAPT, why: "no S46 priority option"},
		{name: "nothing", opts: nil, why: ""},
		{name: "all three, no priority: MAP-T", opts: dhcpv6.Options{mape, seed, lw}, domains: 1, mechanism: MechanismMAPT,
			ignored: []string{"MAP-E (94) container 1 ignored: mechanism not implemented", "lw4o6 (96) container 1 ignored: mechanism not implemented"}},
		{name: "priority MAP-E, MAP-T: MAP-E skipped", opts: dhcpv6.Options{prio(94, 95, 96), mape, seed, lw}, domains: 1, mechanism: MechanismMAPT,
			priority: []string{"MAP-E (94)", "MAP-T (95)", "lw4o6 (96)"}, why: "MAP-E (94) not implemented",
			ignored: []string{"MAP-E (94) container 1 ignored", "lw4o6 (96) container 1 ignored"}},
		{name: "priority MAP-T first", opts: dhcpv6.Options{prio(95, 94), mape, seed}, domains: 1, mechanism: MechanismMAPT,
			priority: []string{"MAP-T (95)", "MAP-E (94)"}, why: "first in the server's S46 priority", ignored: []string{"MAP-E (94) container 1 ignored"}},
		{name: "priority without MAP-T: MAP-T not used", opts: dhcpv6.Options{prio(94, 96), mape, seed, lw}, priority: []string{"MAP-E (94)", "lw4o6 (96)"},
			why:     "lists no mechanism this CE implements",
			ignored: []string{"MAP-E (94) container 1 ignored", "MAP-T container 1 ignored: the server's S46 priority [MAP-E (94), lw4o6 (96)] does not list MAP-T", "lw4o6 (96) container 1 ignored"}},
		{name: "MAP-T listed, container invalid", opts: dhcpv6.Options{prio(94, 95), mape, bad}, priority: []string{"MAP-E (94)", "MAP-T (95)"},
			why: "no valid MAP-T container", ignored: []string{"MAP-E (94) container 1 ignored", "MAP-T container 1 ignored: s46: S46_CONT_MAPT (95): 0 S46_DMR (91) options"}},
		{name: "malformed priority ignored", opts: dhcpv6.Options{&dhcpv6.OptionGeneric{OptionCode: OptionS46Prio, OptionData: []byte{0, 94, 0}}, seed},
			domains: 1, mechanism: MechanismMAPT, ignored: []string{"S46 priority option ignored: S46 priority: option-length 3"}},
		{name: "unknown code in priority", opts: dhcpv6.Options{prio(200, 95), seed}, domains: 1, mechanism: MechanismMAPT,
			priority: []string{"option 200", "MAP-T (95)"}, why: "option 200 not implemented"},
		{name: "only MAP-E", opts: dhcpv6.Options{mape}, why: "only mechanisms this CE does not implement", ignored: []string{"MAP-E (94) container 1 ignored"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sel := SelectS46(tc.opts)
			if len(sel.Domains) != tc.domains || sel.Mechanism != tc.mechanism || !reflect.DeepEqual(sel.Priority, tc.priority) {
				t.Errorf("domains %d mechanism %q priority %q; want %d %q %q", len(sel.Domains), sel.Mechanism, sel.Priority, tc.domains, tc.mechanism, tc.priority)
			}
			if !strings.Contains(sel.Why, tc.why) {
				t.Errorf("why %q, want %q", sel.Why, tc.why)
			}
			if len(sel.Ignored) != len(tc.ignored) {
				t.Fatalf("ignored %q, want %q", sel.Ignored, tc.ignored)
			}
			for i, want := range tc.ignored {
				if !strings.Contains(sel.Ignored[i], want) {
					t.Errorf("ignored[%d] = %q, want %q", i, sel.Ignored[i], want)
				}
			}
		})
	}
}

func TestLoadLeaseRejects(t *testing.T) {
	good := `{"Prefix":"2001:db8:ce:11b::/64","Preferred":300000000000,"Valid":600000000000,"T1":100000000000,"T2":200000000000,
"Obtained":"2026-01-01T00:00:00Z","ServerID":"AAMAAQIAAAAAmQ==","ServerAddr":"fe80::1","Domains":null,"Ignored":null}`
	dir := t.TempDir()
	write := func(s string) {
		if err := os.WriteFile(filepath.Join(dir, leaseFile), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(good)
	if l, err := LoadLease(dir); err != nil || l.Prefix.String() != "2001:db8:ce:11b::/64" {
		t.Fatalf("good lease: %+v %v", l, err)
	}
	for _, tc := range []struct{ from, to, want string }{
		{`"2001:db8:ce:11b::/64"`, `"2001:db8:ce:11b::1/64"`, "not a masked IPv6 prefix"},
		{`"2001:db8:ce:11b::/64"`, `"192.0.2.0/24"`, "not a masked IPv6 prefix"},
		{`"T1":100000000000`, `"T1":300000000000`, "timers"},
		{`"T1":100000000000`, `"T1":-1`, "timers"},
		{`"Preferred":300000000000`, `"Preferred":900000000000`, "lifetimes"},
		{`"Valid":600000000000`, `"Valid":0`, "lifetimes"},
		{`"Valid":600000000000`, `"Valid":9223372036854775807`, "lifetimes"},
		{`"ServerID":"AAMAAQIAAAAAmQ=="`, `"ServerID":""`, "server-id"},
		{`"Obtained":"2026-01-01T00:00:00Z"`, `"Obtained":"0001-01-01T00:00:00Z"`, "obtained"},
		{`"Domains":null`, `"Domains":[{"Rules":[],"DMR":"64:ff9b::/96"}]`, "domain 1"},
		{`"Ignored":null`, `"Ignored":null,"Search":["a\nb"]`, "not a plain domain name"},
		{`"Ignored":null`, `"Ignored":null,"DNS":["192.0.2.1"]`, "not an IPv6 address"},
		{`"Ignored":null`, `"Ignored":null,"DNS":["fe80::1%eth0"]`, "not an IPv6 address"},
		{`"ServerAddr":"fe80::1"`, `"ServerAddr":"fe80::1%eth0"`, "has a zone"},
	} {
		write(strings.Replace(good, tc.from, tc.to, 1))
		if l, err := LoadLease(dir); err == nil || !strings.Contains(err.Error(), tc.want) || l != nil {
			t.Errorf("%s: lease %+v, err %v; want an error with %q", tc.to, l, err, tc.want)
		}
	}
}
