package relay

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/mapt-go/mapt/domainfile"
	"github.com/mapt-go/mapt/internal/rpfilter"
)

// sysctl reads a sysctl by its dotted name.
func sysctl(key string) (string, error) {
	b, err := os.ReadFile("/proc/sys/" + strings.ReplaceAll(key, ".", "/"))
	return strings.TrimSpace(string(b)), err
}

func setSysctl(key, val string) error {
	return os.WriteFile("/proc/sys/"+strings.ReplaceAll(key, ".", "/"), []byte(val), 0o644)
}

// prepareHost makes the host settings the BR depends on hold, or refuses
// to start naming the one that does not:
//   - forwarding, IPv4 and IPv6: the stack forwards every translated
//     packet. Refused when off: turning a host into a router is the
//     operator's decision.
//   - reverse-path filtering on the IPv6 side (rpFilterOff): translated
//     CE packets enter the IPv4 stack there, from CE addresses the BR
//     routes elsewhere (to its local device), on a device without IPv4
//     address, which fails even loose mode: the kernel drops them all
//     while the BR counts them as translated. Turned off for that device,
//     logged; other devices keep their filtering.
//   - IPv6 on the IPv4 side: translated Internet packets enter the IPv6
//     stack there; with disable_ipv6 they vanish. Enabled, logged.
func prepareHost(f *domainfile.File, log *slog.Logger) error {
	for _, key := range []string{"net.ipv4.conf.all.forwarding", "net.ipv6.conf.all.forwarding"} {
		v, err := sysctl(key)
		if err != nil {
			return fmt.Errorf("relay: read %s: %w", key, err)
		}
		if v != "1" {
			return fmt.Errorf("relay: %s is %s: the BR forwards what it translates; set it to 1", key, v)
		}
	}
	if err := rpFilterOff(f.BR.IPv6Interface, log); err != nil {
		return err
	}
	key := ""
	key = "net.ipv6.conf." + f.BR.IPv4Interface + ".disable_ipv6"
	if v, err := sysctl(key); err != nil {
		return fmt.Errorf("relay: read %s: %w", key, err)
	} else if v != "0" {
		if err := setSysctl(key, "0"); err != nil {
			return fmt.Errorf("relay: set %s=0 (translated Internet packets enter IPv6 there): %w", key, err)
		}
		log.Warn("IPv6 enabled on the IPv4 side: translated packets enter the IPv6 stack there", "sysctl", key, "was", v)
	}
	return nil
}

// rpFilterOff turns reverse-path filtering off for dev, the IPv6 side
// (rpfilter.Off), and says so.
func rpFilterOff(dev string, log *slog.Logger) error {
	c, err := rpfilter.Off(rpfilter.Conf, dev)
	if err != nil {
		return fmt.Errorf("relay: %w (reverse-path filtering drops translated CE packets on %s)", err, dev)
	}
	if c != nil {
		log.Warn("reverse-path filtering turned off on the IPv6 side, which has no IPv4 address: it would drop every translated CE packet; other devices keep theirs",
			"sysctl", c.Key(), "was", c.Own, "all_was", c.All)
	}
	return nil
}

// icmpSource is the IPv4 source of the ICMPv6 errors from IPv6 routers the
// BR translates (RFC 6791): br.icmp-source, else the first global IPv4
// address of the IPv4-side device, else none (the translator then uses
// 192.0.0.8, RFC 7600).
func icmpSource(f *domainfile.File) netip.Addr {
	if f.BR.ICMPSource.IsValid() {
		return f.BR.ICMPSource
	}
	l, err := netlink.LinkByName(f.BR.IPv4Interface)
	if err != nil {
		return netip.Addr{}
	}
	addrs, err := netlink.AddrList(l, unix.AF_INET)
	if err != nil {
		return netip.Addr{}
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP.To4()); ok && ip.IsGlobalUnicast() {
			return ip
		}
	}
	return netip.Addr{}
}
