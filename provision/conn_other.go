//go:build !linux

package provision

import (
	"errors"
	"net"
)

func openConn(string) (net.PacketConn, error) {
	return nil, errors.New("provision: the DHCPv6 client runs on Linux only")
}
