package provision

import (
	"context"
	"fmt"
	"net"
	"syscall"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"golang.org/x/sys/unix"
)

// openConn opens the client socket: UDP [::]:546 bound to the interface
// (SO_BINDTODEVICE), so that it needs no link-local address yet (DAD may
// still run) and hears only its own link. (insomniacslk's server6 has a
// helper for this, but it drags golang.org/x/net/ipv6 into a binary that
// must fit a router's flash.)
func openConn(ifname string) (net.PacketConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); serr != nil {
				return
			}
			serr = unix.BindToDevice(int(fd), ifname)
		})
		if err != nil {
			return err
		}
		if serr != nil {
			return fmt.Errorf("bind to %s: %w", ifname, serr)
		}
		return nil
	}}
	return lc.ListenPacket(context.Background(), "udp6", fmt.Sprintf("[::]:%d", dhcpv6.DefaultClientPort))
}
