package nat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"

	"github.com/mapt-go/mapt/testenv"
)

// Lab addresses: lan (10.0.0.2) -> ce (lan0 10.0.0.1, up0 198.51.100.2)
// -> sink (198.51.100.1). The sink routes the CE's MAP address back to
// the CE, as the BR would.
var sinkAddr = netip.MustParseAddr("198.51.100.1")

const (
	uplink   = "up0"
	echoPort = 7
	tcpPort  = 80
)

type natLab struct {
	lan, ce, sink *testenv.NS
}

func newNATLab(t testing.TB) *natLab {
	t.Helper()
	testenv.Require(t, "nft", "tcpdump", "sysctl")
	l := testenv.New(t)
	n := &natLab{lan: l.NS("lan"), ce: l.NS("ce"), sink: l.NS("sink")}
	l.Veth(n.lan, "eth0", n.ce, "lan0")
	l.Veth(n.ce, uplink, n.sink, "eth0")
	n.lan.Addr("eth0", "10.0.0.2/24")
	n.lan.Addr("eth0", "10.0.0.3/24")
	n.lan.Route("default", "via", "10.0.0.1")
	n.ce.Addr("lan0", "10.0.0.1/24")
	n.ce.Addr(uplink, "198.51.100.2/24")
	n.ce.Route("default", "via", "198.51.100.1")
	n.ce.Forwarding()
	n.sink.Addr("eth0", "198.51.100.1/24")
	n.sink.Route("192.0.2.0/24", "via", "198.51.100.2")
	n.lan.Sysctl("net.ipv4.ping_group_range", "0 2147483647")
	n.ce.Sysctl("net.ipv4.ping_group_range", "0 2147483647")
	n.sink.Sysctl("net.core.somaxconn", "8192")
	// Flows must outlive the test: unreplied UDP and ICMP entries would
	// otherwise expire after 30 s and free their ports.
	n.ce.Sysctl("net.netfilter.nf_conntrack_udp_timeout", "600")
	n.ce.Sysctl("net.netfilter.nf_conntrack_icmp_timeout", "600")
	return n
}

// sinkServers runs a UDP echo server and a TCP listener in the sink and
// records the source address of every datagram and connection.
type sinkServers struct {
	mu   sync.Mutex
	udp  []netip.AddrPort
	tcp  []netip.AddrPort
	uc   *net.UDPConn
	ln   *net.TCPListener
	done chan struct{}
}

func (n *natLab) startSink(t *testing.T) *sinkServers {
	t.Helper()
	s := &sinkServers{done: make(chan struct{})}
	err := n.sink.Do(func() error {
		var err error
		s.uc, err = net.ListenUDP("udp4", &net.UDPAddr{IP: sinkAddr.AsSlice(), Port: echoPort})
		if err != nil {
			return err
		}
		s.uc.SetReadBuffer(8 << 20)
		s.ln, err = net.ListenTCP("tcp4", &net.TCPAddr{IP: sinkAddr.AsSlice(), Port: tcpPort})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		buf := make([]byte, 2048)
		for {
			nr, from, err := s.uc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			s.mu.Lock()
			s.udp = append(s.udp, from)
			s.mu.Unlock()
			s.uc.WriteToUDPAddrPort(buf[:nr], from)
		}
	}()
	var conns []net.Conn
	go func() {
		defer wg.Done()
		for {
			c, err := s.ln.Accept()
			if err != nil {
				for _, c := range conns {
					c.Close()
				}
				return
			}
			conns = append(conns, c)
			s.mu.Lock()
			s.tcp = append(s.tcp, c.RemoteAddr().(*net.TCPAddr).AddrPort())
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		s.uc.Close()
		s.ln.Close()
		wg.Wait()
	})
	return s
}

func (s *sinkServers) seen() (udp, tcp []netip.AddrPort) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]netip.AddrPort(nil), s.udp...), append([]netip.AddrPort(nil), s.tcp...)
}

// flows opens n flows of proto ("tcp", "udp" or "icmp") from ns to the
// sink, one after the other, each confirmed by the far end (handshake or
// echo). It returns how many succeeded before the first failure and the
// sockets to close when the flows may end. A failure is a flow whose first
// packet the CE dropped: it gets no answer within wait.
func openFlows(ns *testenv.NS, proto string, n int, wait time.Duration) (ok int, closeAll func(), err error) {
	var fds []int
	var conns []net.Conn
	closeAll = func() {
		for _, c := range conns {
			c.Close()
		}
		for _, fd := range fds {
			syscall.Close(fd)
		}
	}
	err = ns.Do(func() error {
		for i := range n {
			switch proto {
			case "tcp":
				c, err := net.DialTimeout("tcp4", netip.AddrPortFrom(sinkAddr, tcpPort).String(), wait)
				if err != nil {
					return nil
				}
				conns = append(conns, c)
			case "udp":
				c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(sinkAddr, echoPort)))
				if err != nil {
					return err
				}
				conns = append(conns, c)
				msg := fmt.Appendf(nil, "flow %d", i)
				if _, err := c.Write(msg); err != nil {
					return err
				}
				c.SetReadDeadline(time.Now().Add(wait))
				buf := make([]byte, 64)
				if _, err := c.Read(buf); err != nil {
					return nil
				}
			case "icmp":
				fd, err := pingEcho(sinkAddr, uint16(i), wait)
				if fd >= 0 {
					fds = append(fds, fd)
				}
				if errors.Is(err, syscall.EAGAIN) {
					return nil
				}
				if err != nil {
					return err
				}
			default:
				return fmt.Errorf("unknown protocol %q", proto)
			}
			ok++
		}
		return nil
	})
	return ok, closeAll, err
}

// pingEcho sends one echo request from a new ICMP datagram socket (the
// kernel picks its identifier) and waits for the reply. It returns the
// socket, which keeps the identifier, and thus the flow, in use.
func pingEcho(dst netip.Addr, seq uint16, wait time.Duration) (int, error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, syscall.IPPROTO_ICMP)
	if err != nil {
		return -1, fmt.Errorf("ping socket: %w", err)
	}
	tv := syscall.NsecToTimeval(wait.Nanoseconds())
	if err := syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv); err != nil {
		return fd, err
	}
	msg := []byte{8, 0, 0, 0, 0, 0, 0, 0, 'm', 'a', 'p', 't'}
	binary.BigEndian.PutUint16(msg[6:], seq)
	sa := &syscall.SockaddrInet4{Addr: dst.As4()}
	if err := syscall.Sendto(fd, msg, 0, sa); err != nil {
		return fd, fmt.Errorf("ping send: %w", err)
	}
	buf := make([]byte, 128)
	for {
		n, _, err := syscall.Recvfrom(fd, buf, 0)
		if err != nil {
			return fd, err
		}
		if n >= 8 && buf[0] == 0 && binary.BigEndian.Uint16(buf[6:]) == seq {
			return fd, nil
		}
	}
}

// conntrackIn dials the conntrack netlink socket of ns.
func conntrackIn(t *testing.T, ns *testenv.NS) *conntrack.Conn {
	t.Helper()
	c, err := conntrack.Dial(&netlink.Config{NetNS: int(ns.Handle())})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// natted returns the translated (address, port or echo id) of every
// conntrack entry of proto that the CE source-NATed.
func natted(t *testing.T, ct *conntrack.Conn, proto uint8) []netip.AddrPort {
	t.Helper()
	flows, err := ct.Dump(nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []netip.AddrPort
	for _, f := range flows {
		if f.TupleOrig.Proto.Protocol != proto || !f.Status.SrcNAT() {
			continue
		}
		port := f.TupleReply.Proto.DestinationPort
		if proto == syscall.IPPROTO_ICMP {
			port = f.TupleReply.Proto.ICMPID
		}
		out = append(out, netip.AddrPortFrom(f.TupleReply.IP.DestinationAddress, port))
	}
	return out
}

// wireSource is the source address and port (or echo id) of a captured
// packet from the CE side, with the protocol name.
type wireSource struct {
	proto string
	src   netip.AddrPort
}

// wireSources lists the sources of the TCP, UDP and ICMP echo request
// packets in a sink capture that came from the CE.
func wireSources(pkts []gopacket.Packet) []wireSource {
	var out []wireSource
	for _, p := range pkts {
		ip, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if !ok {
			continue
		}
		src, _ := netip.AddrFromSlice(ip.SrcIP)
		if src == sinkAddr {
			continue
		}
		switch l4 := p.TransportLayer().(type) {
		case *layers.TCP:
			out = append(out, wireSource{"tcp", netip.AddrPortFrom(src, uint16(l4.SrcPort))})
		case *layers.UDP:
			out = append(out, wireSource{"udp", netip.AddrPortFrom(src, uint16(l4.SrcPort))})
		default:
			if ic, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); ok && ic.TypeCode.Type() == layers.ICMPv4TypeEchoRequest {
				out = append(out, wireSource{"icmp", netip.AddrPortFrom(src, ic.Id)})
			} else {
				out = append(out, wireSource{ip.Protocol.String(), netip.AddrPortFrom(src, 0)})
			}
		}
	}
	return out
}
