package provision

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"
)

// FuzzParseContainer feeds arbitrary container payloads to the parser. It
// must never panic; whatever parses must re-encode stably, and whatever
// yields a domain must survive encode -> parse unchanged.
func FuzzParseContainer(f *testing.F) {
	for _, s := range []string{
		keaSeedOption95[9:],
		rule(seedRule+seedPP) + seedDMR,
		rule(otherRule) + rule("01 00 20 c0000212 38 20010db8001234"+"005d 0004 06 08 3400") + "005b 0005 20 20010db8",
		unknownOpt + rule(seedRule+unknownOpt+seedPP) + seedDMR,
		rule(seedRule + "005d 0004 00 04 0000"),
		"005a 0010 20010db8000000000000000000000001",
		"",
	} {
		f.Add(unhex(f, s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseContainer(OptionS46ContMAPT, b)
		if err != nil {
			return
		}
		enc := c.ToBytes()
		c2, err := ParseContainer(OptionS46ContMAPT, enc)
		if err != nil {
			t.Fatalf("re-encoded container %x does not parse: %v", enc, err)
		}
		if enc2 := c2.ToBytes(); !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable:\n%x\n%x", enc, enc2)
		}
		d, err := c.Domain()
		if err != nil {
			return
		}
		d2, err := ParseMAPT(NewMAPTContainer(d).ToBytes())
		if err != nil {
			t.Fatalf("domain %+v does not round-trip: %v", d, err)
		}
		if !reflect.DeepEqual(d, d2) {
			t.Fatalf("round trip changed the domain:\n%+v\n%+v", d, d2)
		}
	})
}

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
	seed := unhex(f, keaSeedOption95)
	p := iaPrefix("2001:db8:ce:11b::/64", 300*time.Second, 600*time.Second)
	names := &dhcpv6.OptionGeneric{OptionCode: OptionDomainList, OptionData: appendName(appendName(nil, "isp.example"), "b.example")}
	for _, m := range []*dhcpv6.Message{
		testReply(dhcpv6.MessageTypeReply, id, 0, 0, []*dhcpv6.OptIAPrefix{p}, nil, names,
			&dhcpv6.OptionGeneric{OptionCode: OptionDNSServers, OptionData: make([]byte, 32)},
			&dhcpv6.OptionGeneric{OptionCode: OptionS46Prio, OptionData: []byte{0, 94, 0, 95}}),
		testReply(dhcpv6.MessageTypeReply, id, 100*time.Second, 200*time.Second, []*dhcpv6.OptIAPrefix{p}, nil, &dhcpv6.OptionGeneric{OptionCode: OptionS46ContMAPT, OptionData: seed[4:]}),
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
