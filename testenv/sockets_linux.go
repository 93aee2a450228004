package testenv

import (
	"context"
	"io"
	"net"
	"time"
)

// Listen opens a listening socket inside the namespace. The socket stays
// in the namespace; any goroutine may serve it.
func (n *NS) Listen(network, addr string) net.Listener {
	n.lab.t.Helper()
	return openIn(n, network, addr, net.Listen)
}

// ListenPacket opens a packet socket inside the namespace.
func (n *NS) ListenPacket(network, addr string) net.PacketConn {
	n.lab.t.Helper()
	return openIn(n, network, addr, net.ListenPacket)
}

// openIn opens a socket with open inside n's namespace and closes it when
// the test ends; a socket keeps the namespace it was made in.
func openIn[S io.Closer](n *NS, network, addr string, open func(network, addr string) (S, error)) S {
	n.lab.t.Helper()
	var s S
	if err := n.Do(func() (err error) { s, err = open(network, addr); return }); err != nil {
		n.lab.t.Fatalf("testenv: %s: listen %s %s: %v", n.Short, network, addr, err)
	}
	n.lab.t.Cleanup(func() { s.Close() })
	return s
}

// Dial connects from inside the namespace, optionally from a local
// address (ip:port, or "" for any).
func (n *NS) Dial(network, local, remote string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := n.Do(func() error {
		d := net.Dialer{Timeout: timeout}
		if local != "" {
			var err error
			switch network {
			case "udp", "udp4", "udp6":
				d.LocalAddr, err = net.ResolveUDPAddr(network, local)
			default:
				d.LocalAddr, err = net.ResolveTCPAddr(network, local)
			}
			if err != nil {
				return err
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		var err error
		c, err = d.DialContext(ctx, network, remote)
		return err
	})
	if err == nil {
		n.lab.t.Cleanup(func() { c.Close() })
	}
	return c, err
}

// EchoUDP answers every datagram sent to addr inside the namespace with
// the same bytes (an RFC 862 echo) until the test ends.
func (n *NS) EchoUDP(network, addr string) net.PacketConn {
	n.lab.t.Helper()
	c := n.ListenPacket(network, addr)
	go Echo(c)
	return c
}

// Echo sends every datagram c receives back to its sender until c is
// closed.
func Echo(c net.PacketConn) {
	EachPacket(c, func(b []byte, from net.Addr) { c.WriteTo(b, from) })
}

// EachPacket gives handle every datagram c receives, and its sender, until
// c is closed. b is only valid during the call.
func EachPacket(c net.PacketConn, handle func(b []byte, from net.Addr)) {
	buf := make([]byte, 65536)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return
		}
		handle(buf[:n], from)
	}
}

// EchoTCP accepts connections on addr inside the namespace and sends each
// one's bytes back until its peer closes it, until the test ends.
func (n *NS) EchoTCP(network, addr string) net.Listener {
	n.lab.t.Helper()
	return n.ServeTCP(network, addr, func(c net.Conn) { io.Copy(c, c) })
}

// ServeTCP accepts connections on addr inside the namespace until the
// test ends, and gives each to handle on a goroutine of its own; the
// connection is closed when handle returns.
func (n *NS) ServeTCP(network, addr string, handle func(net.Conn)) net.Listener {
	n.lab.t.Helper()
	l := n.Listen(network, addr)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return l
}
