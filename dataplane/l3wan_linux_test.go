package dataplane

import (
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/mapt-go/mapt/mapt"
	"github.com/mapt-go/mapt/testenv"
)

// openTUN creates a TUN device (no packet information header) in the
// caller's namespace and returns its file; closing it removes the device.
func openTUN(name string) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	var req [unix.IFNAMSIZ + 64]byte
	copy(req[:], name)
	*(*uint16)(unsafe.Pointer(&req[unix.IFNAMSIZ])) = unix.IFF_TUN | unix.IFF_NO_PI
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETIFF, uintptr(unsafe.Pointer(&req[0]))); errno != 0 {
		unix.Close(fd)
		return nil, fmt.Errorf("TUNSETIFF %s: %w", name, errno)
	}
	return os.NewFile(uintptr(fd), "/dev/net/tun:"+name), nil
}

// wire copies packets from one TUN device to the other until either is
// closed: a point-to-point link without link layer, like PPP or a raw-IP
// modem. A write fails while the other device is still down; the packet
// is lost, as on a real link.
func wire(a, b *os.File) {
	cp := func(dst, src *os.File) {
		buf := make([]byte, 65536)
		for {
			n, err := src.Read(buf)
			if err != nil {
				return
			}
			dst.Write(buf[:n])
		}
	}
	go cp(a, b)
	go cp(b, a)
}

// TestL3WAN runs the CE with a WAN that has no link layer, as a PPPoE
// session device or a raw-IP modem has (RFC 7599 does not care what the
// WAN is): translated packets leave it bare (bpf_redirect, no neighbour
// lookup) and arrive on it bare. The link is two TUN devices the test
// wires together:
//
//	client -- CE (wan: TUN) == wire == (ce0: TUN) rtr -- BR -- server
func TestL3WAN(t *testing.T) {
	testenv.Require(t, "ip", "ping")
	b := mustDerive(labRule, labEUP)
	l := testenv.New(t)
	client, ce, rtr, br, server := l.NS("client"), l.NS("ce"), l.NS("rtr"), l.NS("br"), l.NS("server")
	l.Veth(client, "eth0", ce, "lan0")
	l.Veth(rtr, "up0", br, "eth0")
	l.Veth(br, "eth1", server, "eth0")
	wanF := inNS(t, ce, func() (*os.File, error) { return openTUN("wan") })
	t.Cleanup(func() { wanF.Close() })
	ce0F := inNS(t, rtr, func() (*os.File, error) { return openTUN("ce0") })
	t.Cleanup(func() { ce0F.Close() })
	wire(wanF, ce0F)

	client.Addr("eth0", "192.0.2.59/32")
	// The client's MTU is the uplink's: without br_local here, the BR's
	// own Packet Too Big would have no way back.
	client.MustExec("ip", "link", "set", "dev", "eth0", "mtu", "1252")
	client.Route("10.9.0.1", "dev", "eth0")
	client.Route("default", "via", "10.9.0.1", "dev", "eth0")
	r := b.PortSet.Range(0)
	client.Sysctl("net.ipv4.ip_local_port_range", fmt.Sprintf("%d %d", r.First, r.Last))

	ce.Forwarding()
	ce.Addr("lan0", "10.9.0.1/24")
	ce.Route("192.0.2.59/32", "dev", "lan0")
	ce.MustExec("ip", "tuntap", "add", "dev", "mapt0", "mode", "tun")
	ce.MustExec("ip", "link", "set", "dev", "mapt0", "mtu", "1252", "up")
	ce.Route("default", "dev", "mapt0")
	ce.MustExec("ip", "link", "set", "dev", "wan", "up")
	ce.Addr("wan", "2001:db8:f0::2/64")
	ce.MustExec("ip", "-6", "route", "add", "default", "dev", "wan")

	rtr.Forwarding()
	rtr.MustExec("ip", "link", "set", "dev", "ce0", "up")
	rtr.Addr("ce0", "2001:db8:f0::1/64")
	rtr.Addr("up0", "2001:db8:f::2/64")
	rtr.Route("2001:db8:ce::/51", "dev", "ce0")
	rtr.Route("default", "via", "2001:db8:f::1")

	br.Forwarding()
	br.Sysctl("net.ipv4.conf.all.rp_filter", "0")
	br.Sysctl("net.ipv4.conf.eth0.rp_filter", "0")
	br.Addr("eth0", "2001:db8:f::1/64")
	br.Addr("eth1", "198.51.100.1/24")
	br.Route("2001:db8:ce::/51", "via", "2001:db8:f::2")
	server.Addr("eth0", "198.51.100.7/24")
	server.Route("default", "via", "198.51.100.1")

	var ceT, brT *Translator
	err := ce.Do(func() (err error) {
		if ceT, err = Load(Config{Mode: CE, Binding: b, DMR: labDMR, FMRs: []mapt.Rule{labRule}}); err != nil {
			return err
		}
		return ceT.AttachCE("mapt0", "wan", AttachAuto)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ceT.Close() })
	if c := ceT.Config(); !c.IPv6Side.L3 || !c.IPv4Side.L3 {
		t.Fatalf("attach: sides %+v %+v, want both without link layer", c.IPv6Side, c.IPv4Side)
	}
	err = br.Do(func() (err error) {
		if brT, err = Load(Config{Mode: BR, DMR: labDMR, FMRs: []mapt.Rule{labRule}}); err != nil {
			return err
		}
		return brT.AttachBR("eth0", "eth1", "", AttachAuto)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { brT.Close() })

	if out, err := client.Exec("ping", "-c", "3", "-i", "0.2", "-W", "2", "-e", fmt.Sprint(r.First+1), "198.51.100.7"); err != nil {
		cc, _ := ceT.Counters()
		bc, _ := brT.Counters()
		t.Fatalf("ping over the L3 WAN: %v\n%s\nce %v\nbr %v\n%s", err, out, nonzero(cc), nonzero(bc), ce.MustExec("ip", "-s", "-d", "link", "show", "wan"))
	}
	srv := server.Listen("tcp", "198.51.100.7:7000")
	defer srv.Close()
	go func() {
		c, err := srv.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
	}()
	conn, err := client.Dial("tcp", "", "198.51.100.7:7000", 5*time.Second)
	if err != nil {
		t.Fatalf("tcp over the L3 WAN: %v", err)
	}
	defer conn.Close()
	msg := strings.Repeat("map-t over a wan without link layer ", 100)
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, got); err != nil || string(got) != msg {
		cc, _ := ceT.Counters()
		bc, _ := brT.Counters()
		t.Fatalf("echo over the L3 WAN: %q, %v\nce %v\nbr %v", got[:min(40, len(got))], err, nonzero(cc), nonzero(bc))
	}
	c, err := ceT.Counters()
	if err != nil || c["ce_4to6"] == 0 || c["ce_6to4"] == 0 {
		t.Fatalf("CE counters %v (%v)", c, err)
	}
}

func nonzero(m map[string]uint64) map[string]uint64 {
	out := map[string]uint64{}
	for k, v := range m {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}

// TestAttachRefusesDeviceTypes: a device the programs cannot handle is
// refused with its type named.
func TestAttachRefusesDeviceTypes(t *testing.T) {
	testenv.Require(t, "ip")
	l := testenv.New(t)
	ns := l.NS("ce")
	ns.MustExec("ip", "tuntap", "add", "dev", "mapt0", "mode", "tun")
	tr := load(t, ceConfig())
	err := ns.Do(func() error { return tr.AttachCE("mapt0", "lo", AttachAuto) })
	if err == nil || !strings.Contains(err.Error(), "lo is a loopback device") {
		t.Fatalf("attach to loopback: %v", err)
	}
}
