package provision

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/mapt-go/mapt/mapt"
	"github.com/mapt-go/mapt/s46"
	"github.com/mapt-go/mapt/s46/s46test"
)

var (
	testMAC      = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x11}
	testServerID = []byte{0, 3, 0, 1, 0x02, 0, 0, 0, 0, 0x99} // DUID-LL
)

func testIdentity(t testing.TB) Identity {
	id, err := newIdentity("wan", testMAC)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestBuildMessage(t *testing.T) {
	id := testIdentity(t)
	xid := dhcpv6.TransactionID{1, 2, 3}
	pfx := netip.MustParsePrefix("2001:db8:ce:11b::/64")
	tests := []struct {
		typ                dhcpv6.MessageType
		serverID           []byte
		prefix             netip.Prefix
		wantORO, wantRapid bool
	}{
		{dhcpv6.MessageTypeSolicit, nil, netip.Prefix{}, true, true},
		{dhcpv6.MessageTypeRequest, testServerID, pfx, true, false},
		{dhcpv6.MessageTypeRenew, testServerID, pfx, true, false},
		{dhcpv6.MessageTypeRebind, nil, pfx, true, false},
		{dhcpv6.MessageTypeRelease, testServerID, pfx, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.typ.String(), func(t *testing.T) {
			wire := buildMessage(tc.typ, xid, id, 1500*time.Millisecond, tc.serverID, tc.prefix, msgConfig{oro: oro(nil), rapidCommit: true}).ToBytes()
			m, err := dhcpv6.MessageFromBytes(wire)
			if err != nil {
				t.Fatal(err)
			}
			if m.MessageType != tc.typ || m.TransactionID != xid {
				t.Errorf("type %s xid %x", m.MessageType, m.TransactionID)
			}
			if cid := m.Options.ClientID(); cid == nil || !bytes.Equal(cid.ToBytes(), id.DUID) {
				t.Errorf("client-id %v, want %x", cid, id.DUID)
			}
			if d, ok := m.Options.ClientID().(*dhcpv6.DUIDLL); !ok || !bytes.Equal(d.LinkLayerAddr, testMAC) {
				t.Errorf("client-id %v, want DUID-LL of %s", m.Options.ClientID(), testMAC)
			}
			if sid := m.GetOneOption(dhcpv6.OptionServerID); (sid != nil) != (tc.serverID != nil) || (sid != nil && !bytes.Equal(sid.ToBytes(), tc.serverID)) {
				t.Errorf("server-id %v, want %x", sid, tc.serverID)
			}
			oro := m.Options.RequestedOptions()
			if tc.wantORO != (oro.Contains(s46.OptionContMAPT) && oro.Contains(dhcpv6.OptionSolMaxRT)) {
				t.Errorf("ORO %v, want 95 and 82: %v", oro, tc.wantORO)
			}
			if got := m.GetOneOption(dhcpv6.OptionRapidCommit) != nil; got != tc.wantRapid {
				t.Errorf("rapid commit %v, want %v", got, tc.wantRapid)
			}
			if m.Options.ElapsedTime() != 1500*time.Millisecond {
				t.Errorf("elapsed %s", m.Options.ElapsedTime())
			}
			if len(m.Options.IANA()) != 0 || len(m.Options.IATA()) != 0 {
				t.Error("IA_NA/IA_TA present; only IA_PD is wanted")
			}
			pds := m.Options.IAPD()
			if len(pds) != 1 || pds[0].IaId != id.IAID {
				t.Fatalf("IA_PD %v, want one with IAID %x", pds, id.IAID)
			}
			ps := pds[0].Options.Prefixes()
			if tc.prefix.IsValid() != (len(ps) == 1) || (len(ps) == 1 && ps[0].Prefix.String() != tc.prefix.String()) {
				t.Errorf("IA_PD prefixes %v, want %v", ps, tc.prefix)
			}
		})
	}
	// Elapsed time saturates at 0xffff hundredths (RFC 8415 s21.9).
	m := buildMessage(dhcpv6.MessageTypeSolicit, xid, id, time.Hour, nil, netip.Prefix{}, msgConfig{oro: oro(nil)})
	if b := m.GetOneOption(dhcpv6.OptionElapsedTime).ToBytes(); !bytes.Equal(b, []byte{0xff, 0xff}) {
		t.Errorf("elapsed after an hour = %x, want ffff", b)
	}
}

// testReply builds a server message answering id with one IA_PD.
func testReply(typ dhcpv6.MessageType, id Identity, t1, t2 time.Duration, prefixes []*dhcpv6.OptIAPrefix, pdStatus *dhcpv6.OptStatusCode, extra ...dhcpv6.Option) *dhcpv6.Message {
	m := &dhcpv6.Message{MessageType: typ, TransactionID: dhcpv6.TransactionID{1, 2, 3}}
	m.AddOption(&dhcpv6.OptionGeneric{OptionCode: dhcpv6.OptionClientID, OptionData: id.DUID})
	m.AddOption(&dhcpv6.OptionGeneric{OptionCode: dhcpv6.OptionServerID, OptionData: testServerID})
	pd := &dhcpv6.OptIAPD{IaId: id.IAID, T1: t1, T2: t2}
	for _, p := range prefixes {
		pd.Options.Add(p)
	}
	if pdStatus != nil {
		pd.Options.Add(pdStatus)
	}
	m.AddOption(pd)
	for _, o := range extra {
		m.AddOption(o)
	}
	return m
}

func iaPrefix(p string, pref, valid time.Duration) *dhcpv6.OptIAPrefix {
	_, n, _ := net.ParseCIDR(p)
	return &dhcpv6.OptIAPrefix{PreferredLifetime: pref, ValidLifetime: valid, Prefix: n}
}

func TestLeaseFromMessage(t *testing.T) {
	id := testIdentity(t)
	seed := s46test.Hex(t, s46test.KeaSeedOption95)
	container := &dhcpv6.OptionGeneric{OptionCode: s46.OptionContMAPT, OptionData: seed[4:]}
	noDMR := &dhcpv6.OptionGeneric{OptionCode: s46.OptionContMAPT, OptionData: s46test.Hex(t, s46test.RuleTLV(s46test.SeedRule+s46test.SeedPP))}
	p11b := iaPrefix("2001:db8:ce:11b::/64", 300*time.Second, 600*time.Second)
	now := time.Unix(1_700_000_000, 0)
	from := netip.MustParseAddr("fe80::1")
	other := id
	other.DUID = []byte{0, 3, 0, 1, 2, 2, 2, 2, 2, 2}
	strange := id
	strange.IAID = [4]byte{9, 9, 9, 9}
	dns := &dhcpv6.OptionGeneric{OptionCode: OptionDNSServers, OptionData: s46test.Hex(t, "20010db8000600000000000000000053 20010db8000600000000000000000054")}
	search := &dhcpv6.OptionGeneric{OptionCode: OptionDomainList, OptionData: appendName(appendName(nil, "isp.example"), "lab.isp.example")}
	ntp := &dhcpv6.OptionGeneric{OptionCode: OptionNTPServer, OptionData: append(s46test.Hex(t, "0001 0010 20010db8000600000000000000000123 0003"),
		append([]byte{0, byte(len(appendName(nil, "ntp.isp.example")))}, appendName(nil, "ntp.isp.example")...)...)}

	tests := []struct {
		name      string
		m         *dhcpv6.Message
		as        Identity
		wantErr   error
		check     func(t *testing.T, l *Lease)
		errSubstr string
	}{
		{name: "good", m: testReply(dhcpv6.MessageTypeReply, id, 100*time.Second, 200*time.Second, []*dhcpv6.OptIAPrefix{p11b}, nil, container,
			dns, search, ntp), as: id,
			check: func(t *testing.T, l *Lease) {
				want := &Lease{Prefix: netip.MustParsePrefix("2001:db8:ce:11b::/64"), Preferred: 300 * time.Second, Valid: 600 * time.Second,
					T1: 100 * time.Second, T2: 200 * time.Second, Obtained: now, ServerID: testServerID, ServerAddr: from, Domains: []mapt.Domain{s46test.SeedDomain(t)},
					Mechanism: MechanismMAPT, Selection: "MAP-T chosen: offered, no S46 priority option",
					DNS:    []netip.Addr{netip.MustParseAddr("2001:db8:6::53"), netip.MustParseAddr("2001:db8:6::54")},
					Search: []string{"isp.example", "lab.isp.example"}, NTP: []string{"2001:db8:6::123", "ntp.isp.example"}}
				if !reflect.DeepEqual(l, want) {
					t.Errorf("lease\n got %+v\nwant %+v", l, want)
				}
			}},
		{name: "T1 T2 zero: 0.5 and 0.8 of preferred", m: testReply(dhcpv6.MessageTypeReply, id, 0, 0, []*dhcpv6.OptIAPrefix{p11b}, nil), as: id,
			check: func(t *testing.T, l *Lease) {
				if l.T1 != 150*time.Second || l.T2 != 240*time.Second {
					t.Errorf("T1 %s T2 %s, want 150s 240s", l.T1, l.T2)
				}
			}},
		{name: "withdrawn prefix skipped, next one taken", m: testReply(dhcpv6.MessageTypeReply, id, 0, 0, []*dhcpv6.OptIAPrefix{iaPrefix("2001:db8:ce:774::/64", 0, 0), p11b}, nil), as: id,
			check: func(t *testing.T, l *Lease) {
				if l.Prefix.String() != "2001:db8:ce:11b::/64" {
					t.Errorf("prefix %s", l.Prefix)
				}
			}},
		{name: "invalid container ignored with reason", m: testReply(dhcpv6.MessageTypeReply, id, 0, 0, []*dhcpv6.OptIAPrefix{p11b}, nil, noDMR), as: id,
			check: func(t *testing.T, l *Lease) {
				if len(l.Domains) != 0 || len(l.Ignored) != 1 || !strings.Contains(l.Ignored[0], "0 S46_DMR (91) options") {
					t.Errorf("domains %v ignored %q", l.Domains, l.Ignored)
				}
			}},
		{name: "other client's", m: testReply(dhcpv6.MessageTypeReply, other, 0, 0, []*dhcpv6.OptIAPrefix{p11b}, nil), as: id, wantErr: errNotForUs, errSubstr: "client-id"},
		{name: "no IA_PD for our IAID", m: testReply(dhcpv6.MessageTypeReply, strange, 0, 0, []*dhcpv6.OptIAPrefix{p11b}, nil), as: id, wantErr: errNoPrefix, errSubstr: "no IA_PD with IAID"},
		{name: "NoPrefixAvail", m: testReply(dhcpv6.MessageTypeAdvertise, id, 0, 0, nil, &dhcpv6.OptStatusCode{StatusCode: iana.StatusNoPrefixAvail, StatusMessage: "none left"}), as: id, wantErr: errNoPrefix, errSubstr: "none left"},
		{name: "NoBinding", m: testReply(dhcpv6.MessageTypeReply, id, 0, 0, nil, &dhcpv6.OptStatusCode{StatusCode: iana.StatusNoBinding}), as: id, wantErr: errNoBinding},
		{name: "no prefix at all", m: testReply(dhcpv6.MessageTypeAdvertise, id, 0, 0, nil, nil), as: id, wantErr: errNoPrefix, errSubstr: "no usable prefix"},
		{name: "preferred > valid", m: testReply(dhcpv6.MessageTypeReply, id, 0, 0, []*dhcpv6.OptIAPrefix{iaPrefix("2001:db8:ce:11b::/64", 9*time.Second, 5*time.Second)}, nil), as: id, wantErr: errNoPrefix},
		{name: "T1 > T2", m: testReply(dhcpv6.MessageTypeReply, id, 20*time.Second, 10*time.Second, []*dhcpv6.OptIAPrefix{p11b}, nil), as: id, wantErr: errNoPrefix, errSubstr: "T1 20s > T2 10s"},
		{name: "UnspecFail", m: testReply(dhcpv6.MessageTypeReply, id, 0, 0, []*dhcpv6.OptIAPrefix{p11b}, nil, &dhcpv6.OptStatusCode{StatusCode: iana.StatusUnspecFail}), as: id, wantErr: errNotForUs, errSubstr: "UnspecFail"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Through the wire, as the client sees it.
			r, err := parseMessage(tc.m.ToBytes())
			if err != nil {
				t.Fatal(err)
			}
			l, err := leaseFromMessage(r.m, tc.as, from, now)
			if err == nil {
				l.setOptions(r)
			}
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.errSubstr) {
					t.Fatalf("err = %v, want %v containing %q", err, tc.wantErr, tc.errSubstr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, l)
		})
	}
	// No server-id: dropped.
	m := testReply(dhcpv6.MessageTypeReply, id, 0, 0, []*dhcpv6.OptIAPrefix{p11b}, nil)
	m.Options.Del(dhcpv6.OptionServerID)
	if _, err := leaseFromMessage(m, id, from, now); !errors.Is(err, errNotForUs) {
		t.Errorf("no server-id: %v", err)
	}
}

func TestLeasePersistence(t *testing.T) {
	dir := t.TempDir()
	if l, err := LoadLease(dir); l != nil || err != nil {
		t.Fatalf("LoadLease(empty) = %v, %v", l, err)
	}
	l := &Lease{Prefix: netip.MustParsePrefix("2001:db8:ce:11b::/64"), Preferred: time.Minute, Valid: 2 * time.Minute,
		T1: 30 * time.Second, T2: 48 * time.Second, Obtained: time.Now().Round(0), ServerID: testServerID,
		ServerAddr: netip.MustParseAddr("fe80::1"), Domains: []mapt.Domain{s46test.SeedDomain(t)}, Ignored: []string{"why"}}
	l.Domains[0].Rules[0].FMR = true
	if err := SaveLease(dir, l); err != nil {
		t.Fatal(err)
	}
	got, err := LoadLease(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Obtained.Equal(l.Obtained) {
		t.Errorf("obtained %v, want %v", got.Obtained, l.Obtained)
	}
	got.Obtained = l.Obtained
	if !reflect.DeepEqual(got, l) {
		t.Errorf("loaded\n%+v\nwant\n%+v", got, l)
	}
	if !got.SameBinding(l) {
		t.Error("SameBinding of a loaded lease is false")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != leaseFile {
		t.Errorf("state dir holds %v, want only %s", ents, leaseFile)
	}
	if err := os.WriteFile(filepath.Join(dir, leaseFile), []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadLease(dir); err == nil || !strings.HasPrefix(err.Error(), "provision: load lease") {
		t.Errorf("corrupt lease: %v", err)
	}
	if err := RemoveLease(dir); err != nil {
		t.Fatal(err)
	}
	if err := RemoveLease(dir); err != nil {
		t.Errorf("second RemoveLease: %v", err)
	}
}

func TestSameBinding(t *testing.T) {
	a := &Lease{Prefix: netip.MustParsePrefix("2001:db8:ce:11b::/64"), Domains: []mapt.Domain{s46test.SeedDomain(t)}, T1: time.Second}
	b := *a
	b.T1, b.Obtained = time.Hour, time.Now()
	if !a.SameBinding(&b) {
		t.Error("lifetimes alone changed the binding")
	}
	c := *a
	c.Domains = []mapt.Domain{s46test.SeedDomain(t)}
	c.Domains[0].Rules[0].PSIDOffset = 6
	if a.SameBinding(&c) {
		t.Error("a changed rule kept the binding")
	}
	d := *a
	d.Prefix = netip.MustParsePrefix("2001:db8:ce:774::/64")
	if a.SameBinding(&d) {
		t.Error("a changed prefix kept the binding")
	}
	e := *a
	e.Domains = nil
	if a.SameBinding(&e) {
		t.Error("dropping the domains kept the binding")
	}
}

func TestIdentity(t *testing.T) {
	dir := t.TempDir()
	a, err := loadIdentity(dir, "wan", testMAC)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.DUID, []byte{0, 3, 0, 1, 0x02, 0, 0, 0, 0, 0x11}) {
		t.Errorf("DUID %x, want DUID-LL of %s", a.DUID, testMAC)
	}
	// Persisted: a later MAC change does not change who we are.
	b, err := loadIdentity(dir, "wan", net.HardwareAddr{2, 9, 9, 9, 9, 9})
	if err != nil || !reflect.DeepEqual(a, b) {
		t.Errorf("reloaded identity %+v, %v; want %+v", b, err, a)
	}
	// No MAC: a random DUID-UUID, persisted.
	dir2 := t.TempDir()
	u, err := loadIdentity(dir2, "tun0", nil)
	if err != nil || len(u.DUID) != 18 || u.DUID[1] != 4 {
		t.Fatalf("identity without MAC %x, %v; want a DUID-UUID", u.DUID, err)
	}
	u2, _ := loadIdentity(dir2, "tun0", nil)
	if !reflect.DeepEqual(u, u2) {
		t.Error("DUID-UUID not persisted")
	}
	if err := os.WriteFile(filepath.Join(dir2, identityFile), []byte(`{"DUID":""}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadIdentity(dir2, "tun0", nil); err == nil {
		t.Error("empty DUID accepted")
	}
}
