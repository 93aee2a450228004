package relay

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/mapt-go/mapt/dataplane"
)

// localDevicePrefix names the TUN devices (maptbr0, maptbr1, ... one per
// translator) the BR's own ICMP errors are routed into, where br_local
// translates them (Packet Too Big for a packet that outgrew the IPv6 link
// in translation, Time Exceeded for a CE's packet): without them, path MTU
// discovery through the BR breaks. They also take what br_ingress4 leaves
// to the stack to fragment.
const localDevicePrefix = "maptbr"

// localRoutes owns the TUN device and its routes: the DMR and every rule's
// IPv4 prefix. With pinned translators the device is persistent, so that
// it and its routes stay while the BR is away (killed, or stopped with
// --leave-in-place) and br_local, pinned on its egress, goes on
// translating the BR's own ICMP errors: TC egress runs before the
// device's transmit, which is all a TUN without a reader lacks. A restart
// attaches to the device again and takes over its routes; a clean stop
// deletes it, and its routes with it. Without pins the device goes with
// the process, and its routes (the anycast announcements among them)
// with it: a killed BR whose translator died announces nothing.
type localRoutes struct {
	name   string
	tun    *netlink.Tuntap
	index  int
	routes map[netip.Prefix]bool
	mtu4   int // the locked MTU of the IPv4 routes
}

// openLocal creates the device; AttachBR hooks br_local to it. The IPv4
// routes through it carry a locked MTU of dataplane.FragmentMTU of the
// IPv6 side and lowest-ipv6-mtu (RFC 7915 s4.1): the IPv4 stack fragments
// to it what br_ingress4 hands over (fragments, and packets with DF clear
// that would not fit), and br_local translates the pieces, none larger
// than lowest-ipv6-mtu. The device's own MTU is the IPv6 side's, so that
// it keeps IPv6 (which needs 1280) for the BR's own ICMPv6 errors.
func openLocal(name, v6dev string, lowestIPv6MTU int, persist bool) (*localRoutes, error) {
	tun := &netlink.Tuntap{
		LinkAttrs:  netlink.LinkAttrs{Name: name},
		Mode:       netlink.TUNTAP_MODE_TUN,
		Flags:      netlink.TUNTAP_NO_PI,
		NonPersist: !persist,
		Queues:     1, // keeps the file open (without pins, the device lives as long), gives the carrier; a device left by an earlier run is attached to
	}
	if err := netlink.LinkAdd(tun); err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV) {
			return nil, fmt.Errorf("relay: create %s: the kernel lacks TUN (/dev/net/tun; module tun): %w", name, err)
		}
		return nil, fmt.Errorf("relay: create %s: %w", name, err)
	}
	l := &localRoutes{name: name, tun: tun, routes: map[netip.Prefix]bool{}}
	if !persist && len(tun.Fds) > 0 {
		// A device an earlier pinned run left stays persistent otherwise.
		unix.IoctlSetInt(int(tun.Fds[0].Fd()), unix.TUNSETPERSIST, 0)
	}
	link, err := netlink.LinkByName(name)
	if err != nil {
		l.close()
		return nil, fmt.Errorf("relay: %s: %w", l.name, err)
	}
	l.index = link.Attrs().Index
	// Routes an earlier run left on the device are ours: sync keeps the
	// wanted ones and removes the others.
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		routes, err := netlink.RouteListFiltered(family, &netlink.Route{LinkIndex: l.index}, netlink.RT_FILTER_OIF)
		if err != nil {
			continue
		}
		for _, r := range routes {
			if r.Dst != nil && r.Protocol == unix.RTPROT_BOOT { // ours; the kernel's own are RTPROT_KERNEL
				if p, ok := netip.AddrFromSlice(r.Dst.IP); ok {
					ones, _ := r.Dst.Mask.Size()
					l.routes[netip.PrefixFrom(p.Unmap(), ones)] = true
				}
			}
		}
	}
	v6, err := netlink.LinkByName(v6dev)
	if err != nil {
		l.close()
		return nil, fmt.Errorf("relay: %s: %w", v6dev, err)
	}
	l.mtu4 = dataplane.FragmentMTU(v6.Attrs().MTU, lowestIPv6MTU)
	if err := netlink.LinkSetMTU(link, v6.Attrs().MTU); err != nil {
		l.close()
		return nil, fmt.Errorf("relay: %s mtu: %w", l.name, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		l.close()
		return nil, fmt.Errorf("relay: %s up: %w", l.name, err)
	}
	return l, nil
}

// sync makes the routes through the device exactly the DMR and the rules'
// IPv4 prefixes: new ones first, then stale ones go.
func (l *localRoutes) sync(cfg dataplane.Config) error {
	want := map[netip.Prefix]bool{cfg.DMR: true}
	for _, r := range cfg.FMRs {
		want[r.IPv4Prefix] = true
	}
	var errs []error
	for p := range want {
		if !l.routes[p] {
			if err := netlink.RouteReplace(l.route(p)); err != nil {
				errs = append(errs, fmt.Errorf("relay: route %s dev %s: %w", p, l.name, err))
				continue
			}
			l.routes[p] = true
		}
	}
	for p := range l.routes {
		if !want[p] {
			if err := netlink.RouteDel(l.route(p)); err != nil && !errors.Is(err, unix.ESRCH) {
				errs = append(errs, fmt.Errorf("relay: delete route %s: %w", p, err))
			}
			delete(l.routes, p)
		}
	}
	return errors.Join(errs...)
}

func (l *localRoutes) route(p netip.Prefix) *netlink.Route {
	r := &netlink.Route{
		LinkIndex: l.index,
		Dst:       &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())},
		Scope:     netlink.SCOPE_LINK,
	}
	if p.Addr().Is4() {
		r.MTU, r.MTULock = l.mtu4, true
	}
	return r
}

// close removes the device, and so its routes.
func (l *localRoutes) close() error {
	errs := []error{l.release()}
	if err := netlink.LinkDel(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: l.index}}); err != nil && !errors.Is(err, unix.ENODEV) {
		errs = append(errs, fmt.Errorf("relay: delete %s: %w", l.name, err))
	}
	return errors.Join(errs...)
}

// release closes our queue and leaves the device and its routes.
func (l *localRoutes) release() error {
	var errs []error
	for _, f := range l.tun.Fds {
		errs = append(errs, f.Close())
	}
	l.tun.Fds = nil
	return errors.Join(errs...)
}
