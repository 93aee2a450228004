package nat

import (
	"net/netip"
	"syscall"
	"testing"

	"github.com/mapt-go/mapt/mapt"
	"github.com/mapt-go/mapt/testenv"
)

// openIn opens a NAT on ns, closed with the test.
func openIn(t *testing.T, ns *testenv.NS) *NAT {
	t.Helper()
	n, err := Open(int(ns.Handle()), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// withWAN is c with the WAN the translator hands packets to the stack on.
func withWAN(c Config, wan string) Config {
	c.WAN = wan
	return c
}

// bindingConfig derives the NAT configuration of a MAP binding.
func bindingConfig(t testing.TB, rule, eup, uplink string, mtu int) Config {
	t.Helper()
	r, err := mapt.ParseRule(rule)
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.Derive(netip.MustParsePrefix(eup))
	if err != nil {
		t.Fatal(err)
	}
	return FromBinding(b, uplink, mtu)
}

// sendRaw4 sends payload to dst from ns over a raw IPv4 socket of proto:
// the kernel adds the IPv4 header, so the packet goes through the stack
// and its hooks (conntrack, our table) like any the LAN sends.
func sendRaw4(ns *testenv.NS, proto int, dst netip.Addr, payload []byte) error {
	return ns.Do(func() error {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, proto)
		if err != nil {
			return err
		}
		defer syscall.Close(fd)
		return syscall.Sendto(fd, payload, 0, &syscall.SockaddrInet4{Addr: dst.As4()})
	})
}
