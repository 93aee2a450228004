package lab_test

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mapt-go/mapt/lab"
	"github.com/mapt-go/mapt/testenv"
)

// TestOneToOneReservations runs 1:1 rules (EA length 0) through real Kea
// from `br kea-config`: CE 11b is bound to its rule by its DUID (a host
// reservation carrying its own S46 container), CE 774 by its delegated
// prefix (a pool of one prefix carrying that rule's container). Both get
// 198.51.100.18 with their own PSID, zero-touch, and reach s with source
// ports of their own sets: the BR tells them apart by port.
func TestOneToOneReservations(t *testing.T) {
	l := up(t, lab.Options{OneToOne: true})
	l.S.Route("198.51.100.0/24", "via", "203.0.113.1")
	want := map[string]struct {
		prefix string
		psid   uint16
	}{
		"ce11b": {"2001:db8:12:3400::/56", 0x34},
		"ce774": {"2001:db8:12:3500::/56", 0x35},
	}
	for _, c := range l.CEs {
		s, err := l.Status(c)
		if err != nil {
			t.Fatal(err)
		}
		w := want[c.Name]
		if s.Source != "dhcpv6" || s.Lease == nil || s.Lease.Prefix != w.prefix || s.Binding == nil ||
			s.Binding.IPv4 != "198.51.100.18/32" || s.Binding.PSID != w.psid || s.Binding.PSIDLen != 8 || s.Binding.PSIDOffset != 6 ||
			!strings.HasPrefix(s.Binding.Rule, strings.TrimSuffix(w.prefix, "/56")) {
			t.Fatalf("%s: lease %+v binding %+v", c.Name, s.Lease, s.Binding)
		}
	}
	// s tells each connection where it came from.
	l.S.ServeTCP("tcp", testenv.SeedServer+":9100", func(c net.Conn) { fmt.Fprintf(c, "%s\n", c.RemoteAddr()) })
	for i, c := range l.CEs {
		conn, err := c.Client.Dial("tcp", "", testenv.SeedServer+":9100", 10*time.Second)
		if err != nil {
			t.Fatalf("%s: %v\nbr:\n%s", c.Client.Short, err, l.Relay.Output())
		}
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil {
			t.Fatalf("%s: %v", c.Client.Short, err)
		}
		from, err := netip.ParseAddrPort(strings.TrimSpace(line))
		if err != nil {
			t.Fatal(err)
		}
		// a = 6, k = 8: the PSID is bits 2-9 of the port.
		psid := want[c.Name].psid
		if from.Addr() != netip.MustParseAddr("198.51.100.18") || (from.Port()>>2)&0xff != psid || from.Port() < 1024 {
			t.Fatalf("%s: s saw %s, want 198.51.100.18 with a port of PSID %#x", c.Client.Short, from, psid)
		}
		wget(t, []*testenv.NS{l.C1, l.C2}[i])
	}
}
