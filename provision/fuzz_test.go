package provision

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/mapt-go/mapt/s46"
	"github.com/mapt-go/mapt/s46/s46test"
)

// FuzzLeaseFromMessage feeds arbitrary datagrams through what the client
// does with a server's answer: parseMessage (insomniacslk's option parsers
// and our own for DNS, search list and NTP), then leaseFromMessage.
// Nothing may panic, and an accepted lease must be one the client could
// persist and resume (Lease.validate).
func FuzzLeaseFromMessage(f *testing.F) {
	id, err := newIdentity("wan", testMAC)
	if err != nil {
		f.Fatal(err)
	}
	seed := s46test.Hex(f, s46test.KeaSeedOption95)
	p := iaPrefix("2001:db8:ce:11b::/64", 300*time.Second, 600*time.Second)
	names := &dhcpv6.OptionGeneric{OptionCode: OptionDomainList, OptionData: appendName(appendName(nil, "isp.example"), "b.example")}
	for _, m := range []*dhcpv6.Message{
		testReply(dhcpv6.MessageTypeReply, id, 0, 0, []*dhcpv6.OptIAPrefix{p}, nil, names,
			&dhcpv6.OptionGeneric{OptionCode: OptionDNSServers, OptionData: make([]byte, 32)},
			&dhcpv6.OptionGeneric{OptionCode: OptionS46Prio, OptionData: []byte{0, 94, 0, 95}}),
		testReply(dhcpv6.MessageTypeReply, id, 100*time.Second, 200*time.Second, []*dhcpv6.OptIAPrefix{p}, nil, &dhcpv6.OptionGeneric{OptionCode: s46.OptionContMAPT, OptionData: seed[4:]}),
		testReply(dhcpv6.MessageTypeAdvertise, id, 0, 0, nil, &dhcpv6.OptStatusCode{StatusCode: iana.StatusNoPrefixAvail}),
		testReply(dhcpv6.MessageTypeReply, id, 0, 0, []*dhcpv6.OptIAPrefix{iaPrefix("2001:db8::/48", 0, 0), p}, nil),
	} {
		f.Add(m.ToBytes())
	}
	from := netip.MustParseAddr("fe80::1")
	now := time.Unix(1_700_000_000, 0)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseMessage(b)
		if err != nil {
			return
		}
		l, err := leaseFromMessage(r.m, id, from, now)
		if err != nil {
			if !errors.Is(err, errNotForUs) && !errors.Is(err, errNoPrefix) && !errors.Is(err, errNoBinding) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if !l.Prefix.IsValid() || l.Prefix != l.Prefix.Masked() || !l.Prefix.Addr().Is6() {
			t.Fatalf("lease prefix %v", l.Prefix)
		}
		if l.Valid <= 0 || l.Preferred > l.Valid || l.T1 > l.T2 || l.T2 > l.Valid || l.T1 < 0 {
			t.Fatalf("lease timers %+v", l)
		}
		for _, d := range l.Domains {
			if err := d.Validate(); err != nil {
				t.Fatalf("invalid domain accepted: %v", err)
			}
		}
		l.setOptions(r)
		if err := l.validate(); err != nil {
			t.Fatalf("accepted a lease that would not load back: %v\n%+v", err, l)
		}
	})
}
