package provision

import (
	"net"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/dhcpv6/server6"
)

// openConn opens the client socket: UDP [::]:546 bound to the interface
// (SO_BINDTODEVICE), so that it needs no link-local address yet (DAD may
// still run) and hears only its own link.
func openConn(ifname string) (net.PacketConn, error) {
	return server6.NewIPv6UDPConn(ifname, &net.UDPAddr{IP: net.IPv6unspecified, Port: dhcpv6.DefaultClientPort})
}
